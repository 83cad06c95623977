"""Authorization: rules, public tables and steps, root users, compiled into SQL predicates.

:mod:`cairn.authz.rules` says what a Rule row means; :mod:`cairn.authz.policy` answers who may
do what, as SQL.
"""

from cairn.authz.access import Access
from cairn.authz.policy import AUTHZ_ENTITIES, Authorizer, Caller, SearchRestriction

__all__ = ["AUTHZ_ENTITIES", "Access", "Authorizer", "Caller", "SearchRestriction"]
