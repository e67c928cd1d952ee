"""Persistence: the database (SQLAlchemy) and the blob store."""
