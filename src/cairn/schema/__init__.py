"""The ICAT entity model, declared once as data (``icat.json``) and loaded into typed objects.

Everything else (SQL tables, JSON and XML rendering, validation, getEntityInfo, migrations)
is derived from :data:`SCHEMA`. This package imports nothing else of Cairn.
"""

from cairn.schema.model import (
    ATTRIBUTE,
    MANY,
    ONE,
    SYSTEM_FIELDS,
    Entity,
    Field,
    Schema,
    load_schema,
)

SCHEMA: Schema = load_schema()

__all__ = [
    "ATTRIBUTE",
    "MANY",
    "ONE",
    "SCHEMA",
    "SYSTEM_FIELDS",
    "Entity",
    "Field",
    "Schema",
    "load_schema",
]
