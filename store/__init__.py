"""Persistent state: one relational database, SQLite by default, PostgreSQL in production."""
