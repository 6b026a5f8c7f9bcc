"""Clinician web view: patient search and a cross-hospital timeline, server-rendered (Vietnamese)."""
