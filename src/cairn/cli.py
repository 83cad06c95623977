"""`cairn serve | demo | user | migrate`: the command line."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from cairn.db.engine import Database


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cairn.startup import ROOT_PASSWORD_ENV, ensure_root_account, open_catalogue
    from cairn.web.app import create_app

    settings = _settings(args)
    if args.port is not None:
        settings.server.port = args.port
    if args.host is not None:
        settings.server.host = args.host
    catalogue = open_catalogue(settings)
    created = ensure_root_account(settings, catalogue.db)
    if created:
        user, password = created
        if os.environ.get(ROOT_PASSWORD_ENV):
            print(f"Created root account {user} with the password from {ROOT_PASSWORD_ENV}.")
        else:
            print(f"Created root account {user} with password: {password}\n"
                  "  (shown once; change it with: cairn user add "
                  f"{user} --password NEW)", flush=True)
    if args.demo:
        _load_demo(catalogue.db, args.scale, user=settings.catalogue.root_users[0])
    print(f"Cairn serves {settings.public_url}/icat (catalogue: "
          f"{catalogue.db.engine.url.render_as_string(hide_password=True)})", flush=True)
    app = create_app(catalogue)
    settle_heap()
    uvicorn.run(app, host=settings.server.host, port=settings.server.port,
                log_level=args.log_level, proxy_headers=True)
    return 0


#: Allocations (net of frees) between young-generation collections; CPython's default is 700.
YOUNG_GC_THRESHOLD = 50_000


def settle_heap() -> None:
    """Keep the garbage collector off the request path.

    What startup built (schema, SQLAlchemy metadata, compiled rules: about 100,000 objects)
    lives as long as the process, yet every full collection scanned it again; freezing moves
    it out of the collector's sight. A result page allocates tens of thousands of objects that
    reference counting frees when the response is sent, so collecting young objects every 700
    allocations only walked live pages over and over. Measured on the 2,950-object inv-param
    page of ``bench/query_portal.py``: a mean of 121 ms, 38 of them in the collector; 97 ms,
    none in the collector, so configured.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


def _load_demo(db: Database, scale: float, user: str) -> None:
    from sqlalchemy import func, select

    from cairn.demo import load_demo

    with db.connect() as conn:
        facilities = conn.execute(select(func.count()).select_from(
            db.tables["Facility"])).scalar_one()
    if facilities:
        print("Catalogue already holds data; not loading the demo again.")
        return
    start = time.perf_counter()
    counts = load_demo(db, scale=scale, user=user,
                       progress=lambda line: print("  " + line, flush=True))
    total = sum(counts.values())
    secs = time.perf_counter() - start
    print(f"Demo facility loaded: {total:,} rows in {secs:.1f} s "
          f"({total / secs:,.0f} rows/s); {counts.get('Datafile', 0):,} datafiles.", flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from cairn.startup import open_database

    settings = _settings(args)
    db = open_database(settings)
    _load_demo(db, args.scale, user=settings.catalogue.root_users[0])
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from cairn.authn import db as db_authn
    from cairn.startup import open_database

    settings = _settings(args)
    db = open_database(settings)
    if args.action == "list":
        for name in db_authn.list_users(db):
            print(name)
        return 0
    mnemonic, _, name = args.name.partition("/")
    if not name or mnemonic not in settings.authn or settings.authn[mnemonic].type != "db":
        db_names = [m for m, a in settings.authn.items() if a.type == "db"]
        print(f"error: user must be written MNEMONIC/NAME with a db authenticator's mnemonic "
              f"({', '.join(db_names) or 'none configured'}), not {args.name!r}",
              file=sys.stderr)
        return 2
    if args.action == "add":
        if not args.password:
            print("error: --password is required", file=sys.stderr)
            return 2
        db_authn.set_password(db, name, args.password)
        print(f"{args.name}: password set")
    elif args.action == "remove":
        if not db_authn.remove_user(db, name):
            print(f"error: no such user {args.name}", file=sys.stderr)
            return 1
        print(f"{args.name}: removed")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from cairn.db import migrate
    from cairn.db.engine import Database

    settings = _settings(args)
    db = Database(settings.database_url, zone=settings.zone)
    print(f"schema at {migrate.upgrade(db)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cairn", description="The ICAT catalogue, in Python.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", metavar="FILE", help="TOML configuration file")
        return sp

    s = with_config(sub.add_parser("serve", help="run the server"))
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--demo", action="store_true", help="load the demo facility if empty")
    s.add_argument("--scale", type=float, default=1.0, help="demo size (1 = ~10,000 datafiles)")
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=cmd_serve)

    d = with_config(sub.add_parser("demo", help="load the demo facility into the catalogue"))
    d.add_argument("--scale", type=float, default=1.0, help="1 = ~10,000 datafiles")
    d.set_defaults(func=cmd_demo)

    u = with_config(sub.add_parser("user", help="manage users of a db authenticator"))
    u.add_argument("action", choices=["add", "remove", "list"])
    u.add_argument("name", nargs="?", default="", help="MNEMONIC/NAME, e.g. db/jdoe")
    u.add_argument("--password")
    u.set_defaults(func=cmd_user)

    m = with_config(sub.add_parser("migrate", help="create or upgrade the database schema"))
    m.set_defaults(func=cmd_migrate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
