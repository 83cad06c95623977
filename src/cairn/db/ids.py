"""Primary keys as icat.server's databases make them, detected rather than configured.

A fresh Cairn catalogue numbers ids per table from 1 (identity/AUTO_INCREMENT columns), as
icat.server does on MariaDB with MySQL Connector/J. An existing icat.server database on
PostgreSQL, Oracle or MariaDB Connector/J instead has plain ID columns fed from one global
sequence SEQ_GEN_SEQUENCE (increment 50): EclipseLink reads NEXTVAL = v and owns ids
v-49 .. v. Cairn follows the same rule, so Java and Python writers never collide.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)


class IdAllocator:
    """Hands out ids in sequence mode; in identity mode the database assigns them."""

    def __init__(self, sequence: str | None = None, increment: int = 50) -> None:
        self.sequence = sequence
        self.increment = increment
        self._lock = threading.Lock()
        self._next = 0
        self._last = -1

    @property
    def identity(self) -> bool:
        return self.sequence is None

    def next_id(self, conn: Connection) -> int | None:
        """A fresh id, or None when the database numbers rows itself."""
        if self.sequence is None:
            return None
        with self._lock:
            if self._next > self._last:
                v = int(conn.execute(text(self._nextval_sql(conn))).scalar_one())
                self._next, self._last = v - self.increment + 1, v
            value = self._next
            self._next += 1
            return value

    def _nextval_sql(self, conn: Connection) -> str:
        if conn.dialect.name == "postgresql":
            return f"SELECT nextval('{self.sequence}')"
        return f"SELECT NEXTVAL({self.sequence})"


def detect(engine: Engine, table: str = "INVESTIGATION") -> IdAllocator:
    """Identity mode unless the ID columns have no generator and SEQ_GEN_SEQUENCE exists."""
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "postgresql":
            row = conn.execute(text(
                "SELECT column_default, is_identity FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :t "
                "AND column_name = 'id'"), {"t": table.lower()}).first()
            if row is None or row.is_identity == "YES" or row.column_default:
                return IdAllocator()
            seq = conn.execute(text(
                "SELECT increment_by FROM pg_sequences WHERE schemaname = current_schema() "
                "AND sequencename = 'seq_gen_sequence'")).first()
            if seq is None:
                raise RuntimeError(f"{table}.ID has no default and there is no "
                                   "SEQ_GEN_SEQUENCE: cannot generate ids safely")
            return IdAllocator("seq_gen_sequence", int(seq.increment_by))
        if dialect in ("mysql", "mariadb"):
            row = conn.execute(text(
                "SELECT EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = :t AND COLUMN_NAME = 'ID'"), {"t": table}).first()
            if row is None or "auto_increment" in (row.EXTRA or "").lower():
                return IdAllocator()
            seq = conn.execute(text(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = 'SEQ_GEN_SEQUENCE' AND TABLE_TYPE = 'SEQUENCE'")).first()
            if seq is None:
                raise RuntimeError(f"{table}.ID is not AUTO_INCREMENT and there is no "
                                   "SEQ_GEN_SEQUENCE: cannot generate ids safely")
            inc = conn.execute(text(
                "SELECT increment FROM SEQ_GEN_SEQUENCE")).scalar_one()
            return IdAllocator("SEQ_GEN_SEQUENCE", int(inc))
    return IdAllocator()
