"""Dataset and Investigation fileSize/fileCount add up (cairn.db.sizes), on every backend and
through every write path: the core API's creates, updates, moves, deletes with their cascades
and clones; REST, SOAP and the data service over real HTTP; the demo's bulk load; the
migration that installs the triggers (and leaves icat.server's alone); `cairn sizes
recompute`; two writers at once.

Every check compares the stored sums with sums recounted from the datafiles, for every
dataset and investigation, besides the values each test expects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, select, text

from cairn.catalogue.clone import clone
from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.db import migrate, sizes
from cairn.db.engine import Database
from cairn.db.tables import TABLES
from cairn.demo import load_demo
from cairn.schema import SCHEMA
from cairn.startup import catalogue_of
from tests.conftest import BACKENDS
from tests.integration.catalogue_objects import create
from tests.integration.ids_support import Fixture, Ids, Rest, build, start, uniq
from tests.integration.server import Server, free_port, write_config
from tests.integration.test_soap import call as soap_call
from tests.integration.test_soap import login as soap_login

E = SCHEMA.entities
Sums = dict[int, tuple[int, int]]


# -- the truth: sums recounted from the rows -------------------------------------------------


def stored(conn: Connection, entity: str) -> Sums:
    t = TABLES[entity]
    return {i: (s, n) for i, s, n in conn.execute(select(t.c.id, t.c.fileSize, t.c.fileCount))}


def counted(conn: Connection) -> tuple[Sums, Sums]:
    """(datasets, investigations): what their sums should be, from the datafiles."""
    df, ds, inv = TABLES["Datafile"], TABLES["Dataset"], TABLES["Investigation"]
    per_ds = dict.fromkeys(conn.execute(select(ds.c.id)).scalars(), (0, 0))
    for d, s, n in conn.execute(select(df.c.dataset, func.sum(func.coalesce(df.c.fileSize, 0)),
                                       func.count()).group_by(df.c.dataset)):
        per_ds[d] = (int(s), int(n))
    per_inv = dict.fromkeys(conn.execute(select(inv.c.id)).scalars(), (0, 0))
    for d, i in conn.execute(select(ds.c.id, ds.c.investigation)):
        s, n = per_inv[i]
        per_inv[i] = (s + per_ds[d][0], n + per_ds[d][1])
    return per_ds, per_inv


def assert_exact(engine: Any) -> None:
    with engine.connect() as conn:
        per_ds, per_inv = counted(conn)
        assert stored(conn, "Dataset") == per_ds
        assert stored(conn, "Investigation") == per_inv


# -- the core API ------------------------------------------------------------------------------


@dataclass
class World:
    db: Database
    catalogue: Catalogue
    facility: int
    itype: int
    dtype: int

    def investigation(self, name: str | None = None) -> int:
        return create(self.catalogue, "Investigation", name=name or uniq("inv"), visitId="1",
                      title="t", facility=("Facility", self.facility),
                      type=("InvestigationType", self.itype))

    def dataset(self, inv: int, **values: Any) -> int:
        return create(self.catalogue, "Dataset", name=uniq("ds"), investigation=(
            "Investigation", inv), type=("DatasetType", self.dtype), **values)

    def datafile(self, ds: int, size: int | None, **values: Any) -> int:
        sized = {} if size is None else {"fileSize": size}
        return create(self.catalogue, "Datafile", name=uniq("df"),
                      dataset=("Dataset", ds), **sized, **values)

    def update(self, entity: str, id: int, **values: Any) -> None:
        ones = {k: Obj(E[v[0]], id=v[1]) for k, v in values.items() if isinstance(v, tuple)}
        plain = {k: v for k, v in values.items() if not isinstance(v, tuple)}
        with self.catalogue.as_system() as work:
            work.update(Obj(E[entity], id=id, values=plain, ones=ones))

    def delete(self, entity: str, id: int) -> None:
        with self.catalogue.as_system() as work:
            work.delete([(E[entity], id)])

    def sums(self, entity: str, id: int) -> tuple[int, int]:
        """One row's sums; and every row must be exact."""
        assert_exact(self.db.engine)
        with self.db.connect() as conn:
            return stored(conn, entity)[id]


def make_world(db: Database) -> World:
    catalogue = catalogue_of(db)
    fac = create(catalogue, "Facility", name=uniq("fac"))
    it = create(catalogue, "InvestigationType", name="experiment", facility=("Facility", fac))
    dt = create(catalogue, "DatasetType", name="raw", facility=("Facility", fac))
    return World(db, catalogue, fac, it, dt)


@pytest.fixture
def world(migrated_url: str) -> Iterator[World]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    try:
        yield make_world(db)
    finally:
        db.dispose()


def test_the_migration_installs_cairns_triggers(world: World) -> None:
    with world.db.connect() as conn:
        assert sizes.keeper(conn) == "cairn"
        assert sizes.triggers(conn) == set(sizes.TRIGGERS[world.db.dialect])


def test_datafile_create_update_move_delete(world: World) -> None:
    w = world
    inv1, inv2 = w.investigation(), w.investigation()
    ds1, ds2, ds3 = w.dataset(inv1), w.dataset(inv1), w.dataset(inv2)
    assert w.sums("Dataset", ds1) == (0, 0) and w.sums("Investigation", inv1) == (0, 0)

    a = w.datafile(ds1, 100)
    b = w.datafile(ds1, None)  # no size: 0 bytes, but a file
    assert w.sums("Dataset", ds1) == (100, 2) and w.sums("Investigation", inv1) == (100, 2)
    w.update("Datafile", a, fileSize=250)
    w.update("Datafile", b, fileSize=5)
    assert w.sums("Dataset", ds1) == (255, 2) and w.sums("Investigation", inv1) == (255, 2)
    w.update("Datafile", a, fileSize=None)
    assert w.sums("Dataset", ds1) == (5, 2)
    w.update("Datafile", a, description="renamed")  # no size or dataset change: no change
    assert w.sums("Dataset", ds1) == (5, 2)

    w.update("Datafile", b, dataset=("Dataset", ds3))  # to another investigation
    assert w.sums("Dataset", ds1) == (0, 1) and w.sums("Dataset", ds3) == (5, 1)
    assert w.sums("Investigation", inv1) == (0, 1) and w.sums("Investigation", inv2) == (5, 1)
    w.update("Datafile", a, dataset=("Dataset", ds2), fileSize=7)  # moved and resized at once
    assert w.sums("Dataset", ds1) == (0, 0) and w.sums("Dataset", ds2) == (7, 1)
    assert w.sums("Investigation", inv1) == (7, 1)

    w.delete("Datafile", b)
    assert w.sums("Dataset", ds3) == (0, 0) and w.sums("Investigation", inv2) == (0, 0)
    w.delete("Datafile", a)
    assert w.sums("Investigation", inv1) == (0, 0)


def test_dataset_move_and_delete_carry_their_sums(world: World) -> None:
    w = world
    inv1, inv2 = w.investigation(), w.investigation()
    ds = w.dataset(inv1)
    for size in (10, 20, None):
        w.datafile(ds, size)
    other = w.dataset(inv2)
    w.datafile(other, 1000)
    assert w.sums("Investigation", inv1) == (30, 3)

    w.update("Dataset", ds, investigation=("Investigation", inv2))
    assert w.sums("Investigation", inv1) == (0, 0)
    assert w.sums("Investigation", inv2) == (1030, 4)
    w.update("Dataset", ds, name=uniq("renamed"))  # not a move: nothing changes
    assert w.sums("Investigation", inv2) == (1030, 4)

    w.delete("Dataset", ds)  # its datafiles go with it
    assert w.sums("Investigation", inv2) == (1000, 1)


def test_sums_a_client_writes_are_carried_up(world: World) -> None:
    """icat.server stores what a client writes into a dataset's sums; the investigation
    follows, so it always adds up its datasets."""
    w = world
    inv = w.investigation()
    manual = w.dataset(inv, fileSize=500, fileCount=2)  # files not catalogued one by one
    with w.db.connect() as conn:
        assert stored(conn, "Investigation")[inv] == (500, 2)
    w.datafile(manual, 1)
    w.update("Dataset", manual, fileSize=600)
    with w.db.connect() as conn:
        assert stored(conn, "Dataset")[manual] == (600, 3)
        assert stored(conn, "Investigation")[inv] == (600, 3)
    w.delete("Dataset", manual)
    assert w.sums("Investigation", inv) == (0, 0)


def test_cascaded_delete_of_an_investigation(world: World) -> None:
    w = world
    gone, kept = w.investigation(), w.investigation()
    for inv in (gone, kept):
        for _ in range(2):
            ds = w.dataset(inv)
            w.datafile(ds, 3)
            w.datafile(ds, 4)
    w.delete("Investigation", gone)
    assert w.sums("Investigation", kept) == (14, 4)
    with w.db.connect() as conn:
        assert gone not in stored(conn, "Investigation")


def test_a_tree_created_in_one_unit(world: World) -> None:
    w = world
    fmt_less = [Obj(E["Datafile"], values={"name": f"f{i}", "fileSize": i}) for i in range(5)]
    tree = Obj(E["Investigation"], values={"name": uniq("tree"), "visitId": "1", "title": "t"},
               ones={"facility": Obj(E["Facility"], id=w.facility),
                     "type": Obj(E["InvestigationType"], id=w.itype)},
               manys={"datasets": [
                   Obj(E["Dataset"], values={"name": "a"},
                       ones={"type": Obj(E["DatasetType"], id=w.dtype)},
                       manys={"datafiles": fmt_less[:3]}),
                   Obj(E["Dataset"], values={"name": "b"},
                       ones={"type": Obj(E["DatasetType"], id=w.dtype)},
                       manys={"datafiles": fmt_less[3:]})]})
    with w.catalogue.as_system() as work:
        inv = work.create(tree)
    assert w.sums("Investigation", inv) == (10, 5)


def test_clones_add_up_once(world: World) -> None:
    w = world
    inv = w.investigation()
    ds = w.dataset(inv)
    for size in (1, 2, None):
        w.datafile(ds, size)
    with w.catalogue.as_system() as work:
        ds_copy = clone(work, E["Dataset"], ds, {"name": uniq("copy")})
    assert w.sums("Dataset", ds_copy) == (3, 3)
    assert w.sums("Investigation", inv) == (6, 6)
    with w.catalogue.as_system() as work:
        inv_copy = clone(work, E["Investigation"], inv, {"name": uniq("copy")})
    assert w.sums("Investigation", inv_copy) == (6, 6)
    assert w.sums("Investigation", inv) == (6, 6)


def test_the_demo_adds_up_and_keeps_the_triggers(world: World) -> None:
    # The demo loads into an empty catalogue only.
    with world.db.begin() as conn:
        for entity in ("DatasetType", "InvestigationType", "Facility"):
            conn.execute(TABLES[entity].delete())
    load_demo(world.catalogue, scale=0.05, seed=3)
    with world.db.connect() as conn:
        assert sizes.triggers(conn) == set(sizes.TRIGGERS[world.db.dialect])
        per_ds, per_inv = counted(conn)
    assert all(n > 0 for _, n in per_ds.values())
    assert_exact(world.db.engine)
    # Still counting after the load (SQLite set its triggers aside for it).
    ds = next(iter(per_ds))
    with world.db.connect() as conn:
        inv = conn.execute(select(TABLES["Dataset"].c.investigation)
                           .where(TABLES["Dataset"].c.id == ds)).scalar_one()
    create(world.catalogue, "Datafile", name=uniq("late"), fileSize=9, dataset=("Dataset", ds))
    assert world.sums("Dataset", ds) == (per_ds[ds][0] + 9, per_ds[ds][1] + 1)
    assert world.sums("Investigation", inv) == (per_inv[inv][0] + 9, per_inv[inv][1] + 1)


def test_a_failed_bulk_load_keeps_the_triggers(world: World) -> None:
    with pytest.raises(RuntimeError, match="load failed"), world.db.begin() as conn, \
            sizes.bulk_load(conn):
        raise RuntimeError("load failed")
    with world.db.connect() as conn:
        assert sizes.triggers(conn) == set(sizes.TRIGGERS[world.db.dialect])


def spoil(db: Database) -> None:
    """Wrong sums as a catalogue may have them: invented, or never kept (NULL)."""
    with db.begin() as conn:
        first = conn.execute(text("SELECT MIN(ID) FROM DATASET")).scalar_one()
        conn.execute(text("UPDATE DATASET SET FILESIZE = 123456, FILECOUNT = 77"))
        conn.execute(text("UPDATE DATASET SET FILESIZE = NULL, FILECOUNT = NULL "
                          "WHERE ID = :d"), {"d": first})
        # Last: the triggers carried the datasets' changes up.
        conn.execute(text("UPDATE INVESTIGATION SET FILESIZE = 1, FILECOUNT = NULL"))


def test_recompute_makes_wrong_sums_exact(world: World) -> None:
    w = world
    inv, empty = w.investigation(), w.investigation()
    ds = w.dataset(inv)
    w.datafile(ds, 5)
    w.datafile(ds, None)
    w.dataset(inv)  # no datafiles: 0, 0
    spoil(w.db)
    with pytest.raises(AssertionError):
        assert_exact(w.db.engine)
    with w.db.begin() as conn:
        assert sizes.recompute(conn) == sizes.Recomputed(datasets=2, investigations=2)
    assert w.sums("Investigation", inv) == (5, 2) and w.sums("Investigation", empty) == (0, 0)
    with w.db.begin() as conn:
        assert sizes.recompute(conn) == sizes.Recomputed(0, 0)


def test_cairn_sizes_recompute(world: World, tmp_path: Path) -> None:
    w = world
    inv = w.investigation()
    for _ in range(3):
        ds = w.dataset(inv)
        w.datafile(ds, 10)
    spoil(w.db)
    config = write_config(tmp_path / "cairn.toml", w.db.url, free_port())
    done = subprocess.run([sys.executable, "-m", "cairn.cli", "sizes", "recompute",
                           "--config", str(config)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("corrected 3 datasets and 1 investigations in "), done.stdout
    assert "nothing keeps" not in done.stderr
    assert w.sums("Investigation", inv) == (30, 3)


def test_sqlite_table_rebuilds_keep_the_triggers(world: World) -> None:
    """A later migration that alters DATAFILE or DATASET (SQLite rebuilds the table)."""
    changes = migrate.model_changes(migrate.tables_at("6.1"), migrate.tables_at("6.2"))
    with migrate.migration_connection(world.db) as conn:
        ops = Operations(MigrationContext.configure(conn))
        migrate.revert_changes(ops, changes)
        migrate.apply_changes(ops, changes)
    with world.db.connect() as conn:
        assert sizes.triggers(conn) == set(sizes.TRIGGERS[world.db.dialect])
    inv = world.investigation()
    world.datafile(world.dataset(inv), 8)
    assert world.sums("Investigation", inv) == (8, 1)


def test_keep_file_sizes_false_leaves_the_sums_to_clients(world: World, tmp_path: Path) -> None:
    """As an icat.server without its optional triggers: what python-icat's data assume."""
    w = world
    inv = w.investigation()
    ds = w.dataset(inv)
    w.datafile(ds, 10)
    config = write_config(tmp_path / "cairn.toml", w.db.url, free_port())

    def migrate_with(keep: str) -> None:
        done = subprocess.run([sys.executable, "-m", "cairn.cli", "migrate", "--config",
                               str(config)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "CAIRN_CATALOGUE__KEEP_FILE_SIZES": keep})
        assert done.returncode == 0, done.stderr

    migrate_with("false")
    with w.db.connect() as conn:
        assert sizes.keeper(conn) is None
    w.datafile(ds, 5)  # not counted
    with w.catalogue.as_system() as work:  # copied as they are
        copy = clone(work, E["Dataset"], ds, {"name": uniq("copy")})
    with w.db.connect() as conn:
        assert stored(conn, "Dataset")[ds] == (10, 1)
        assert stored(conn, "Dataset")[copy] == (10, 1)
        assert stored(conn, "Investigation")[inv] == (10, 1)

    migrate_with("true")  # kept again: counted once, from the rows
    assert w.sums("Dataset", ds) == (15, 2) and w.sums("Investigation", inv) == (30, 4)
    w.datafile(ds, 1)
    assert w.sums("Investigation", inv) == (31, 5)


# -- existing icat.server databases -------------------------------------------------------------


def icat_server_database(db: Database) -> dict[str, int]:
    """An unversioned ICAT 6.2 database as icat.server leaves it, sums never kept."""
    tables = migrate.tables_at("6.2")
    tables.metadata.create_all(db.engine, tables=migrate.catalogue_tables(tables))
    stamp = {"createId": "x", "modId": "x", "createTime": db.now(), "modTime": db.now()}

    def insert(conn: Connection, entity: str, **values: Any) -> int:
        result = conn.execute(tables[entity].insert().values(**stamp, **values))
        return int(result.inserted_primary_key[0])

    with db.begin() as conn:
        fac = insert(conn, "Facility", name="F")
        it = insert(conn, "InvestigationType", name="t", facility=fac)
        dt = insert(conn, "DatasetType", name="t", facility=fac)
        inv = insert(conn, "Investigation", name="i", visitId="1", title="t", facility=fac,
                     type=it)
        ds = insert(conn, "Dataset", name="d", investigation=inv, type=dt, complete=False)
        for k, size in enumerate((7, None, 3)):
            insert(conn, "Datafile", name=f"f{k}", dataset=ds, fileSize=size)
    return {"investigation": inv, "dataset": ds}


def test_the_migration_counts_an_existing_catalogue(database_url: str) -> None:
    db = Database(database_url)
    try:
        ids = icat_server_database(db)
        with db.connect() as conn:
            assert stored(conn, "Investigation")[ids["investigation"]] == (None, None)
        migrate.upgrade(db)
        assert_exact(db.engine)
        with db.connect() as conn:
            assert stored(conn, "Dataset")[ids["dataset"]] == (10, 3)
    finally:
        db.dispose()


def icat_server_triggers(conn: Connection) -> None:
    """Stand-ins for icat.server's optional triggers: the same job under their names."""
    renamed = {"CAIRN_SIZES_DATAFILE": "ICAT_SIZES_DATAFILE",
               "CAIRN_SIZES_DATASET": "ICAT_SIZES_DATASET", "CAIRN_SIZES_": "RECALCULATE_ON_"}
    for statement in sizes._ddl(conn.dialect.name):
        for old, new in renamed.items():
            statement = statement.replace(old, new)
        conn.exec_driver_sql(statement)


def test_icat_servers_triggers_are_left_to_count_alone(database_url: str) -> None:
    db = Database(database_url)
    try:
        ids = icat_server_database(db)
        with db.begin() as conn:
            icat_server_triggers(conn)
            sizes.recompute(conn)  # as their create_triggers script does
            assert sizes.keeper(conn) == "icat.server"
        migrate.upgrade(db)
        with db.connect() as conn:
            assert sizes.keeper(conn) == "icat.server"
            assert not any(n.startswith("CAIRN_") for n in sizes.triggers(conn))
        catalogue = catalogue_of(db)
        create(catalogue, "Datafile", name="late", fileSize=5, dataset=("Dataset", ids["dataset"]))
        assert_exact(db.engine)  # counted once
        with db.connect() as conn:
            assert stored(conn, "Investigation")[ids["investigation"]] == (15, 4)
        assert migrate.downgrade(db, "cairn_0006") == "cairn_0006"
        with db.connect() as conn:
            assert sizes.keeper(conn) == "icat.server"  # theirs are not Cairn's to drop
    finally:
        db.dispose()


def test_downgrade_drops_cairns_triggers(world: World) -> None:
    assert migrate.downgrade(world.db, "cairn_0006") == "cairn_0006"
    with world.db.connect() as conn:
        assert sizes.triggers(conn) == set()
    assert migrate.upgrade(world.db) == migrate.head()
    with world.db.connect() as conn:
        assert sizes.keeper(conn) == "cairn"


# -- two writers at once ------------------------------------------------------------------------


def overlapping(first: Callable[[Callable[[], None]], None],
                second: Callable[[], None]) -> None:
    """Run ``first`` (which calls its argument in the middle of its unit of work) and
    ``second`` in two threads, ``second`` starting while ``first``'s unit is still open."""
    started = threading.Event()
    errors: list[BaseException] = []

    def pause() -> None:
        started.set()
        time.sleep(0.5)  # ``second`` runs into our locks now

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:  # reported below
            errors.append(e)
            started.set()

    one = threading.Thread(target=run, args=(lambda: first(pause),))
    two = threading.Thread(target=lambda: (started.wait(30), run(second)))
    one.start()
    two.start()
    one.join(60)
    two.join(60)
    assert not errors, errors


def test_two_writers_at_once(world: World, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time")
    w = world
    inv = w.investigation()
    ds = w.dataset(inv)

    def one_file(pause: Callable[[], None] | None = None) -> None:
        with w.catalogue.as_system() as work:
            work.create(Obj(E["Datafile"], values={"name": uniq("f"), "fileSize": 10},
                            ones={"dataset": Obj(E["Dataset"], id=ds)}))
            if pause:
                pause()

    # Both add a file to one dataset: the second waits for the first, neither is lost.
    overlapping(one_file, one_file)
    assert w.sums("Dataset", ds) == (20, 2)

    def dataset_with_a_file(pause: Callable[[], None] | None = None) -> None:
        # A new dataset, then (after the other unit has begun its own) a file in it: the
        # pattern in which InnoDB's shared foreign-key locks deadlock naive triggers.
        with w.catalogue.as_system() as work:
            new = work.create(Obj(E["Dataset"], values={"name": uniq("ds")},
                                  ones={"investigation": Obj(E["Investigation"], id=inv),
                                        "type": Obj(E["DatasetType"], id=w.dtype)}))
            if pause:
                pause()
            work.create(Obj(E["Datafile"], values={"name": "f", "fileSize": 1},
                            ones={"dataset": Obj(E["Dataset"], id=new)}))

    overlapping(dataset_with_a_file, dataset_with_a_file)
    assert w.sums("Investigation", inv) == (22, 4)


# -- over real HTTP: REST, SOAP and the data service -------------------------------------------


@dataclass
class Http:
    server: Server
    fx: Fixture
    rest: Rest
    ids: Ids

    def sums(self, entity: str, id: int) -> tuple[int, int]:
        """As a client reads them; and every row must be exact."""
        assert_exact(self.server.engine)
        got = self.rest.get(entity, id)
        return got["fileSize"], got["fileCount"]


@pytest.fixture(scope="module", params=BACKENDS)
def http(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Http]:
    tmp = tmp_path_factory.mktemp(f"sizes-{request.param}")
    srv, drop = start(tmp, str(request.param))
    try:
        yield Http(srv, build(srv), Rest(srv), Ids(srv))
    finally:
        srv.stop()
        drop()


def test_rest_writes_moves_deletes_and_clones(http: Http) -> None:
    rest, fx = http.rest, http.fx
    (inv,) = rest.write({"Investigation": {
        "name": uniq("rest"), "visitId": "1", "title": "t", "facility": {"id": fx.facility},
        "type": {"id": rest.search("SELECT t.id FROM InvestigationType t WHERE "
                                   f"t.facility.id = {fx.facility}")[0]},
        "datasets": [{"name": "a", "type": {"id": rest.search(
            f"SELECT t.id FROM DatasetType t WHERE t.facility.id = {fx.facility}")[0]},
            "datafiles": [{"name": "x", "fileSize": 40}, {"name": "y"}]}]}})
    (ds,) = rest.search(f"SELECT ds.id FROM Dataset ds WHERE ds.investigation.id = {inv}")
    x, y = rest.search(f"SELECT df.id FROM Datafile df WHERE df.dataset.id = {ds} "
                       "ORDER BY df.name")
    assert http.sums("Investigation", inv) == (40, 2)
    rest.write([{"Datafile": {"id": y, "fileSize": 2}}])
    assert http.sums("Dataset", ds) == (42, 2)
    rest.write([{"Datafile": {"id": x, "dataset": {"id": fx.ds_b1}}}])
    assert http.sums("Dataset", ds) == (2, 1) and http.sums("Investigation", inv) == (2, 1)

    r = http.server.http.post("/icat/cloner", data={
        "sessionId": rest.root, "name": "Investigation", "id": str(inv),
        "keys": json.dumps({"name": uniq("copy")})})
    assert r.status_code == 200, r.text
    assert http.sums("Investigation", r.json()["id"]) == (2, 1)

    r = http.server.http.delete("/icat/entityManager", params={
        "sessionId": rest.root, "entities": json.dumps({"Dataset": {"id": ds}})})
    assert r.status_code == 204, r.text
    assert http.sums("Investigation", inv) == (0, 0)


def test_soap_create_and_delete(http: Http) -> None:
    sid = soap_login(http.server)
    before = http.sums("Dataset", http.fx.ds_a2)
    (ret,) = soap_call(http.server, "create", f"""<sessionId>{sid}</sessionId>
        <bean xsi:type="ns0:datafile"><name>{uniq("soap")}</name><fileSize>70</fileSize>
        <dataset><id>{http.fx.ds_a2}</id></dataset></bean>""")
    assert http.sums("Dataset", http.fx.ds_a2) == (before[0] + 70, before[1] + 1)
    soap_call(http.server, "delete", f'<sessionId>{sid}</sessionId><bean xsi:type='
              f'"ns0:datafile"><id>{ret.text}</id></bean>')
    assert http.sums("Dataset", http.fx.ds_a2) == before


def test_data_service_put_and_delete(http: Http) -> None:
    fx, sid = http.fx, http.rest.root
    before_ds = http.sums("Dataset", fx.ds_a1)
    before_inv = http.sums("Investigation", fx.inv_a)
    data = b"x" * 1234
    df = http.ids.ok_put(sid, fx.ds_a1, uniq("put") + ".dat", data, fx.fmt)
    assert http.sums("Dataset", fx.ds_a1) == (before_ds[0] + 1234, before_ds[1] + 1)
    assert http.sums("Investigation", fx.inv_a) == (before_inv[0] + 1234, before_inv[1] + 1)
    r = http.server.http.delete("/ids/delete", params={"sessionId": sid, "datafileIds": df})
    assert r.status_code == 204, r.text
    assert http.sums("Dataset", fx.ds_a1) == before_ds
    assert http.sums("Investigation", fx.inv_a) == before_inv
