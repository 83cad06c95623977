"""Authorization.

Until rule-based authorization lands, the policy is the safe one: root users may do
everything and every other user is refused entity access. No open door in the meantime.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from cairn.errors import insufficient_privileges


class Access(StrEnum):
    CREATE = "CREATE"
    READ = "READ"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class Authorizer:
    def __init__(self, root_users: Iterable[str]) -> None:
        self.root_users = frozenset(root_users)

    def is_root(self, user: str) -> bool:
        return user in self.root_users

    def allowed(self, user: str, access: Access, entity: str, id: int | None) -> bool:
        return self.is_root(user)

    def check(self, user: str, access: Access, entity: str, id: int | None) -> None:
        if not self.allowed(user, access, entity, id):
            raise insufficient_privileges(f"{access.value} access to this {entity} is not allowed.")
