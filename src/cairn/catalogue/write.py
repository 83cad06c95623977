"""Create and update: icat.server's write, with nested children and references, in one unit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import update as sql_update

from cairn.authz import Access
from cairn.catalogue.changes import ChangeKind
from cairn.catalogue.objects import Obj
from cairn.catalogue.validate import check_entity_rules, check_fields, check_unique
from cairn.errors import IcatError, bad_parameter, insufficient_privileges, no_such_object
from cairn.schema import SCHEMA, Entity

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

#: Long fields whose Java default is 0, not null, so an omitted value is stored as 0.
ZERO_DEFAULTS = {("Investigation", "fileSize"), ("Investigation", "fileCount"),
                 ("Dataset", "fileSize"), ("Dataset", "fileCount"), ("Datafile", "fileSize")}


class Writer:
    """Writes of one unit of work. ``check_creates=False`` leaves the CREATE permission of
    created objects to the caller (SOAP's create checks the top of a tree only, once it is
    inserted)."""

    def __init__(self, work: Work, check_creates: bool = True) -> None:
        self.work = work
        self.check_creates = check_creates

    def write(self, objs: list[Obj]) -> list[int]:
        """Create objects without id, update those with one; ids of created top-level objects."""
        created: list[int] = []
        for i, obj in enumerate(objs):
            try:
                if obj.id is None:
                    created.append(self.create(obj))
                else:
                    self.update(obj)
            except IcatError as e:
                raise e.at(i) from None
        return created

    # -- helpers ----------------------------------------------------------------------------

    def _db_value(self, entity: Entity, name: str, value: Any) -> Any:
        if value is not None and entity.fields[name].type == "Date":
            return self.work.db.to_db(value)
        return value

    def _resolve(self, field_owner: Entity, fname: str, ref: Obj | None) -> int | None:
        """The id a many-to-one field will store; a reference with values also updates it."""
        if ref is None:
            return None
        if ref.id is None:
            raise bad_parameter(f"{field_owner.name}.{fname} refers to an object without id")
        if ref.values or ref.ones:
            self.update(ref)
        elif self.work.load_one(ref.entity, ref.id) is None:
            raise no_such_object(f"{ref.entity.name}[id:{ref.id}] not found.")
        return ref.id

    # -- create -----------------------------------------------------------------------------

    def create(self, obj: Obj, parent: tuple[str, int] | None = None) -> int:
        entity = obj.entity
        row: dict[str, Any] = {}
        for f in entity.attributes:
            if f.system or f.hidden:
                continue
            if f.name in obj.values:
                row[f.name] = self._db_value(entity, f.name, obj.values[f.name])
            elif (entity.name, f.name) in ZERO_DEFAULTS:
                row[f.name] = 0
            elif f.type == "boolean":
                row[f.name] = False
            else:
                row[f.name] = None
        for f in entity.ones:
            row[f.name] = self._resolve(entity, f.name, obj.ones[f.name]) \
                if f.name in obj.ones else None
        if parent is not None:
            row[parent[0]] = parent[1]
        work = self.work
        row.update(createId=work.user, modId=work.user, createTime=work.now, modTime=work.now)
        # Entity rules first, as icat.server's preparePersist runs before its validation.
        check_entity_rules(work, entity, row)
        check_fields(entity, row)
        check_unique(work, entity, row, None)
        table = work.db.tables[entity.name]
        given = work.db.ids.next_id(work.conn)
        if given is not None:
            row["id"] = given
        result = work.conn.execute(table.insert().values(**row))
        new_id = given if given is not None else int(result.inserted_primary_key[0])  # type: ignore[index]
        work.changes.add(entity.name, ChangeKind.CREATE, (new_id,))
        for mname, children in obj.manys.items():
            back = SCHEMA.inverse(entity.fields[mname]).name
            for child in children:
                self.create(child, (back, new_id))
        if self.check_creates:
            # Checked after the insert, as icat.server does, so rules can see the new row.
            work.check(Access.CREATE, entity.name, new_id)
        obj.id = new_id
        return new_id

    # -- update -----------------------------------------------------------------------------

    def update(self, obj: Obj) -> None:
        entity, work = obj.entity, self.work
        assert obj.id is not None
        current = work.load_one(entity, obj.id)
        if current is None:
            raise no_such_object(f"{entity.name}[id:{obj.id}] not found.")
        identity_change = self._check_update(obj)
        changes: dict[str, Any] = {}
        for name, value in obj.values.items():
            if not entity.fields[name].system:
                changes[name] = self._db_value(entity, name, value)
        for name, ref in obj.ones.items():
            changes[name] = self._resolve(entity, name, ref)
        row = {k: self._db_value(entity, k, v) for k, v in current.values.items()}
        row.update(current.refs)
        row.update(changes)
        check_entity_rules(work, entity, row)
        check_fields(entity, row)
        if any(k in changes for k in entity.key):
            check_unique(work, entity, row, obj.id)
        changes.update(modId=work.user, modTime=work.now)
        # Fields the entity checks derive (Rule's hidden columns, normalised crudFlags).
        changes.update({f.name: row[f.name] for f in entity.attributes
                        if (f.hidden or f.name == "crudFlags") and f.name in row})
        table = work.db.tables[entity.name]
        work.conn.execute(sql_update(table).where(table.c.id == obj.id).values(**changes))
        work.changes.add(entity.name, ChangeKind.UPDATE, (obj.id,))
        if identity_change and self.check_creates:
            work.check(Access.CREATE, entity.name, obj.id)
        for mname, children in obj.manys.items():
            back = SCHEMA.inverse(entity.fields[mname]).name
            for child in children:
                self.create(child, (back, obj.id))

    def _check_update(self, obj: Obj) -> bool:
        """UPDATE permission for the fields sent; True when the natural key's relations change.

        Without a whole-entity UPDATE rule, every field sent needs an attribute-level UPDATE
        rule (``SELECT x.field FROM ...``); one-to-many children need the whole-entity rule.
        Sending a many-to-one field of the natural key is an identity change, which also needs
        DELETE before and CREATE after (icat.server counts it as changed even for the same id).
        """
        work, entity, id = self.work, obj.entity, obj.id
        assert id is not None
        if not work.allowed(Access.UPDATE, entity.name, id):
            fields = [*obj.values, *obj.ones]
            if obj.manys or not fields or not all(
                    work.allowed(Access.UPDATE, entity.name, id, attribute=f)
                    for f in fields):
                raise insufficient_privileges(
                    f"UPDATE access to this {entity.name} is not allowed.")
        identity = any(k in obj.ones for k in entity.key if entity.fields[k].is_one)
        if identity and not work.allowed(Access.DELETE, entity.name, id):
            raise insufficient_privileges(
                f"DELETE access implied by UPDATE to this {entity.name} is not allowed.")
        return identity
