"""INCLUDE clauses: which related objects come back with each entity result (§1.3).

The clause is checked against the schema once, when a query is compiled, and becomes an
:class:`IncludeTree` the catalogue walks with batched queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.errors import bad_parameter
from cairn.query import ast
from cairn.schema import SCHEMA, Entity


@dataclass
class IncludeTree:
    """Which relationship fields to follow from each object, recursively."""

    steps: dict[str, IncludeTree] = field(default_factory=dict)

    @staticmethod
    def all_ones(entity: Entity) -> IncludeTree:
        """``INCLUDE 1``: every many-to-one relation, one level deep."""
        return IncludeTree({f.name: IncludeTree() for f in entity.ones})

    def __bool__(self) -> bool:
        return bool(self.steps)


def include_tree(entity: Entity, include: ast.Include | None, root_var: str | None
                 ) -> IncludeTree:
    """Check an INCLUDE clause whose paths start at ``root_var`` (of type ``entity``).

    ``root_var`` is None when the selected quantity is not a plain variable (``SELECT
    ds.investigation ...``): icat.server then knows no variable to start from, so only
    ``INCLUDE 1`` is usable.
    """
    if include is None:
        return IncludeTree()
    if include.one:
        if include.items:
            raise bad_parameter('"INCLUDE 1" must not be followed by other things to include.')
        return IncludeTree.all_ones(entity)
    root = IncludeTree()
    # Variables of the INCLUDE clause: the root and the aliases defined so far.
    nodes: dict[str, tuple[Entity, IncludeTree]] = {}
    if root_var is not None:
        nodes[root_var.lower()] = (entity, root)
    for item in include.items:
        path = item.path
        if not path.fields:
            raise bad_parameter(f"Path {path.var} must contain a '.'")
        here = nodes.get(path.var.lower())
        if here is None:
            raise bad_parameter(f"variable {path.var.upper()} mentioned in INCLUDE clause is "
                                "not defined")
        for name in path.fields:
            here = _step(*here, name, path.pos)
        if item.alias is not None:
            alias = item.alias.lower()
            if alias in nodes:
                raise bad_parameter(f"variable {alias.upper()} mentioned in INCLUDE clause is "
                                    "already defined")
            nodes[alias] = here
    return root


def _step(entity: Entity, tree: IncludeTree, name: str, pos: int
          ) -> tuple[Entity, IncludeTree]:
    # icat.server's messages verbatim (as the parser's INCLUDE messages); offset = the path.
    f = entity.field(name)
    if f is None or f.is_attribute:
        raise bad_parameter(f"Problem with INCLUDE clause: {name} is not a field of "
                            f"{entity.name}", pos)
    if name in tree.steps:
        # Each (variable, field) pair once: a longer path must continue from an alias.
        raise bad_parameter(f"INCLUDE clause contains redundant path to {name}", pos)
    sub = IncludeTree()
    tree.steps[name] = sub
    return SCHEMA.entities[f.type], sub
