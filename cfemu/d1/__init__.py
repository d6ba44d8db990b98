"""D1: SQLite databases behind `[[d1_databases]]` bindings, with D1's API, limits and error texts."""

from .database import D1Database, D1DatabaseSession, D1PreparedStatement
from .service import D1Service
from .storage import D1Storage

__all__ = ["D1Service", "D1Database", "D1PreparedStatement", "D1DatabaseSession", "D1Storage"]
