"""Alembic migrations of the issuer database (run with :func:`issuer.db.migrate`)."""
