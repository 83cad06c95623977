"""The four kinds of access a rule can grant."""

from enum import StrEnum


class Access(StrEnum):
    CREATE = "CREATE"
    READ = "READ"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
