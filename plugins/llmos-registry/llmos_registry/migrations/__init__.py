"""Alembic migrations of the registry schema (applied by :func:`llmos_registry.db.upgrade`)."""
