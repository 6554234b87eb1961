"""Alembic migrations of the registry schema (applied by :func:`llmos.registry.db.upgrade`)."""
