"""Tests of the data packages under mappings/ (admin units, facilities, reporting)."""
