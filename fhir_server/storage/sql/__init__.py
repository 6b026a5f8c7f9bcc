"""The SQL implementation of storage: SQLite (embedded default) and PostgreSQL (production)."""
