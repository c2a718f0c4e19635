"""Storage: one SQLAlchemy 2.0 engine, typed models per domain, Alembic migrations."""

from cityweave.db.base import Base
from cityweave.db.engine import Database

__all__ = ["Base", "Database"]
