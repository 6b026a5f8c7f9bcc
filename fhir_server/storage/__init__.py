"""Versioned resource storage on SQLite (embedded) and PostgreSQL (production)."""
