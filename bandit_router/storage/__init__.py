"""The event log and snapshot on SQLite and PostgreSQL: the store, its writer, migrations,
rebuild and migrate-store."""
