"""`cairn serve | demo | user | migrate | jobs | search | publish`: the command line."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cairn.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from cairn.catalogue.service import Catalogue
    from cairn.jobs import Job, Scheduler
    from cairn.publishing.service import PublishingService


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    from cairn import heap, logs
    from cairn.startup import (
        ROOT_PASSWORD_ENV,
        assemble,
        created_paths,
        ensure_root_account,
        open_database,
        provisional,
    )
    from cairn.web import accesslog, serving
    from cairn.web.app import create_app

    heap.limit_arenas()  # before any thread: see cairn.heap
    settings = _settings(args)
    # Every line from here on in [logging] format, the configuration's secrets hidden too;
    # uvicorn's records go to the same handler (log_config=None below).
    logs.setup(args.log_level, settings.logging.format, logs.configured_secrets(settings))
    if args.port is not None:
        settings.server.port = args.port
    if args.host is not None:
        settings.server.host = args.host
    # The port first: a busy one is reported before a database or a folder is touched. Then
    # everything that writes, undone on disk if start-up fails (nothing is left behind).
    sock = serving.bind(settings.server.host, settings.server.port)
    try:
        with provisional(created_paths(settings)):
            db = open_database(settings, wait_seconds=settings.catalogue.database_wait_seconds)
            cairn = assemble(settings, db)
            created = ensure_root_account(settings, cairn.db)
            if args.demo:
                _load_demo(cairn.catalogue, args.scale, user=settings.catalogue.root_users[0],
                           file_size=args.file_size)
    except BaseException:
        sock.close()
        raise
    if created:
        user, password = created
        if os.environ.get(ROOT_PASSWORD_ENV):
            print(f"Created root account {user} with the password from {ROOT_PASSWORD_ENV}.")
        else:
            print(f"Created root account {user} with password: {password}\n"
                  "  (shown once; change it with: cairn user add "
                  f"{user})", flush=True)
    if args.demo:
        _sign_in_help(cairn.catalogue, settings.catalogue.root_users[0], created is not None)
    portal = f"its portal at {settings.public_url}/ and " if settings.portal.enabled else ""
    print(f"Cairn serves {portal}{settings.public_url}/icat (catalogue: "
          f"{cairn.db.engine.url.render_as_string(hide_password=True)})", flush=True)
    app = create_app(cairn)
    settle_heap()
    accesslog.install()  # no session or prepared id in the access log
    serving.run(app, sock, settings.server, log_level=args.log_level, proxy_headers=True,
                log_config=None)
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


def _file_size(text: str) -> int:
    from cairn.demo.files import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _sign_in_help(catalogue: Catalogue, root_user: str, root_created: bool) -> None:
    from cairn.demo.accounts import sign_in_help

    # As it was run (`make demo` runs .venv/bin/cairn), so the commands shown can be pasted.
    program = sys.argv[0] if os.path.basename(sys.argv[0]) == "cairn" else "cairn"
    print("\n".join(sign_in_help(catalogue, root_user, root_created, program)), flush=True)


def _load_demo(catalogue: Catalogue, scale: float, user: str,
               file_size: int | None = None) -> None:
    from cairn.demo import load_demo
    from cairn.startup import open_storage

    with catalogue.as_system(read_only=True) as work:
        facilities = work.search("SELECT COUNT(f) FROM Facility f")[0]
    if facilities:
        print("Catalogue already holds data; not loading the demo again.")
        return
    settings = catalogue.settings
    start = time.perf_counter()
    counts = load_demo(catalogue, scale=scale, user=user,
                       progress=lambda line: print("  " + line, flush=True),
                       storage=open_storage(settings.data.main, settings.data),
                       file_size=file_size)
    total = sum(counts.values())
    secs = time.perf_counter() - start
    print(f"Demo facility loaded: {total:,} rows in {secs:.1f} s "
          f"({total / secs:,.0f} rows/s); {counts.get('Datafile', 0):,} datafiles.", flush=True)
    if catalogue.settings.publishing.enabled:
        from cairn.demo.publications import publish_demo

        dois = publish_demo(catalogue, user)
        base = catalogue.settings.publishing.landing_url or \
            f"{catalogue.settings.public_url}/doi/"
        print(f"Published {len(dois) - 1} investigations and a retired beamline; landing "
              f"pages: {base}{dois[0]} ... tombstone: {base}{dois[-1]}", flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from cairn.startup import open_catalogue, open_database, open_search

    settings = _settings(args)
    db = open_database(settings)
    catalogue = open_catalogue(settings, db)
    open_search(settings, catalogue, db, None)  # the demo is indexed as it is loaded
    _load_demo(catalogue, args.scale, user=settings.catalogue.root_users[0],
               file_size=args.file_size)
    _sign_in_help(catalogue, settings.catalogue.root_users[0], root_created=False)
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from cairn.authn import db as db_authn
    from cairn.startup import open_database

    settings = _settings(args)
    db = open_database(settings)
    db_names = [m for m, a in settings.authn.items() if a.type == "db"]
    if args.action == "list":
        # As `add` and `remove` take them (and as users log in): with the mnemonic.
        prefix = f"{db_names[0]}/" if db_names else ""
        for name in db_authn.list_users(db):
            print(prefix + name)
        return 0
    mnemonic, _, name = args.name.partition("/")
    if not name or mnemonic not in settings.authn or settings.authn[mnemonic].type != "db":
        print(f"error: user must be written MNEMONIC/NAME with a db authenticator's mnemonic "
              f"({', '.join(db_names) or 'none configured'}), not {args.name!r}",
              file=sys.stderr)
        return 2
    if args.action == "add":
        password = args.password if args.password is not None else _new_password(args)
        if not password:
            print("error: the password is empty", file=sys.stderr)
            return 2
        db_authn.set_password(db, name, password)
        print(f"{args.name}: password set")
    elif args.action == "remove":
        if not db_authn.remove_user(db, name):
            print(f"error: no such user {args.name}", file=sys.stderr)
            return 1
        print(f"{args.name}: removed")
    return 0


def _new_password(args: argparse.Namespace) -> str:
    """From standard input (``--password-stdin``, or whenever it is not a terminal: scripts
    pipe it), else asked twice without echo."""
    import getpass

    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"New password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise ConfigError("the two passwords differ; nothing was changed")
    return first


def cmd_migrate(args: argparse.Namespace) -> int:
    from cairn.db import migrate, sizes
    from cairn.db.connect import check_sqlite_path, wait_until_reachable
    from cairn.db.engine import Database
    from cairn.startup import check_schema

    settings = _settings(args)
    if args.check:
        return _migrate_check(settings)
    check_sqlite_path(settings.database_url)
    db = Database(settings.database_url, zone=settings.zone)
    wait_until_reachable(db, 0)
    print(f"schema at {migrate.upgrade(db)}")
    sizes.keep(db, settings.catalogue.keep_file_sizes)
    check_schema(db)
    return 0


def _migrate_check(settings: Settings) -> int:
    """Report, changing nothing: the revision, what `cairn migrate` would do, and how the
    tables differ from those Cairn serves. 0: it would be served as it is; 1: not."""
    from cairn.db import migrate, schema_check
    from cairn.db.connect import check_sqlite_path, wait_until_reachable, where
    from cairn.db.engine import Database, parse_url

    u = parse_url(settings.database_url)
    if u.get_backend_name() == "sqlite" and u.database and not os.path.exists(u.database):
        print(f"no catalogue database at {u.database} yet (`cairn migrate` or `cairn serve` "
              "creates it)")
        return 1
    check_sqlite_path(settings.database_url)
    db = Database(settings.database_url, zone=settings.zone)
    wait_until_reachable(db, 0)
    head = migrate.head()
    current = migrate.current(db)
    print(f"catalogue database: {where(db.url)}")
    if current is None:
        try:
            found = migrate.detect_revision(db)
        except migrate.MigrationError as e:
            print(f"revision: none, and no upgrade applies: {e}")
            found = "?"
        else:
            print("revision: none (an empty database)" if found is None else
                  f"revision: none; an icat.server database matching {found}")
    else:
        print(f"revision: {current}")
    if current != head:
        print(f"`cairn migrate` (or `cairn serve` with [catalogue] migrate) would bring it to "
              f"{head}")
    with db.connect() as conn:
        differences = schema_check.compare(conn, db.tables)
    db.dispose()
    if not differences:
        print("tables: as Cairn serves them")
        return 0 if current == head else 1
    intro = "tables: not as Cairn serves them"
    if current != head:
        intro += " (the upgrade adds what is missing of its own revisions)"
    print(schema_check.describe(differences, intro))
    return 1


def cmd_jobs(args: argparse.Namespace) -> int:
    from cairn.jobs import JobQueue, State
    from cairn.startup import open_database

    queue = JobQueue(open_database(_settings(args)))
    if args.action == "list":
        states = [State(s.upper()) for s in args.state] if args.state else []
        jobs = queue.find(states=states, kind=args.kind, limit=args.limit)
        counts = queue.counts()
        for (kind, state), n in sorted(counts.items()):
            print(f"# {kind}: {n} {state.lower()}")
        print(f"{'ID':>8}  {'KIND':<22} {'STATE':<9} {'TRIES':>5}  {'NOT BEFORE (UTC)':<19}  "
              "KEY / ERROR")
        for job in jobs:
            tries = f"{job.attempts}/{job.max_attempts}" if job.max_attempts else str(
                job.attempts)
            note = job.error if job.state is State.FAILED and job.error else job.key or ""
            print(f"{job.id:>8}  {job.kind:<22} {job.state.lower():<9} {tries:>5}  "
                  f"{job.not_before:%Y-%m-%d %H:%M:%S}  {note[:60]}")
        return 0
    try:
        if args.action == "show":
            found = queue.get(args.id)
            if found is None:
                raise LookupError(f"no job {args.id}")
            job = found
        elif args.action == "retry":
            job = queue.retry(args.id)
        else:
            job = queue.cancel(args.id)
    except (LookupError, ValueError) as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    _show_job(job)
    if args.action == "cancel" and job.state is State.RUNNING:
        print("(running: its process is asked to stop, and notices within a poll interval)")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from cairn.errors import IcatError
    from cairn.jobs import Scheduler, State
    from cairn.search.indexer import REBUILD
    from cairn.startup import open_catalogue, open_database, open_search

    settings = _settings(args)
    db = open_database(settings)
    jobs = Scheduler(db, workers=1, poll_seconds=settings.job_poll_seconds,
                     stale_seconds=settings.job_stale_seconds)
    search = open_search(settings, open_catalogue(settings, db, jobs), db, jobs)
    if search is None:
        print("error: free-text search is switched off ([search] enabled = false)",
              file=sys.stderr)
        return 1
    jobs.register(*search.job_kinds())
    if args.action == "reindex":
        try:
            ids = search.reindex(args.entity or None, delete=args.delete)
        except IcatError as e:
            print(f"error: {e.message}", file=sys.stderr)
            return 1
        print(f"queued search.rebuild job{'s' if len(ids) > 1 else ''} "
              f"{', '.join(map(str, ids))}")
        if not args.wait:
            print("(a running `cairn serve` runs them; see `cairn search status`)")
            return 0
        while True:  # run them here (a server may take some of them: fine too)
            jobs.run_pending([REBUILD])
            states = [jobs.queue.get(i) for i in ids]
            if all(j is None or j.state in (State.DONE, State.FAILED, State.CANCELLED)
                   for j in states):
                break
            time.sleep(settings.job_poll_seconds)
        failed = [j for j in states if j is not None and j.state is not State.DONE]
        for j in failed:
            print(f"job {j.id} ({j.payload.get('entity')}): {j.state.lower()} {j.error or ''}")
        return 1 if failed else 0
    for entity, st in search.status().items():
        n = st["documents"]
        line = f"{entity:<18} {n:>12,} document{'' if n == 1 else 's'}"
        for j in st["rebuilding"]:
            done = f"{j['progress'] or 0:,}" + (f"/{j['total']:,}" if j["total"] else "")
            line += f"  rebuilding (job {j['id']}, {j['state'].lower()}, {done})"
        print(line)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from cairn.errors import IcatError
    from cairn.jobs import Scheduler
    from cairn.startup import open_catalogue, open_database, open_publishing

    settings = _settings(args)
    db = open_database(settings)
    jobs = Scheduler(db, workers=1, poll_seconds=settings.job_poll_seconds,
                     stale_seconds=settings.job_stale_seconds)
    publishing = open_publishing(settings, open_catalogue(settings, db, jobs), jobs)
    if publishing is None:
        print("error: publishing is switched off ([publishing] enabled = false)",
              file=sys.stderr)
        return 1
    jobs.register(*publishing.job_kinds())
    try:
        if args.action == "check":
            return _publish_check(publishing, args.investigation)
        if args.action == "withdraw":
            out = publishing.withdraw(None, args.doi, args.reason, args.replaced_by)
        elif args.what == "investigation":
            out = publishing.mint_investigation(None, args.id, draft=args.draft)
        else:
            out = publishing.mint_instrument(None, args.id)
    except IcatError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    st = _wait_for_datacite(publishing, jobs, out["doi"], args.timeout,
                            settings.job_poll_seconds)
    publishing.close()
    line = f"{st['doi']} {st['state']}"
    if st["state"] != st["target"]:
        line += f" (asked: {st['target']}; the job goes on in `cairn serve`)"
    print(line)
    print(f"landing page: {st['url']}")
    if st.get("error"):
        print(f"DataCite: {st['error']}", file=sys.stderr)
    return 0 if st["state"] == st["target"] and not st.get("error") else 1


def _wait_for_datacite(publishing: PublishingService, jobs: Scheduler, doi: str,
                       timeout: float, poll: float) -> dict[str, Any]:
    """Run the DOI's job here until it is where it was asked to be, or ``timeout`` passes
    (a running server may take the job: fine too). A call to DataCite still running then is
    left behind: its claim lapses and the job is run again, which is safe."""
    import threading

    from cairn.jobs import State
    from cairn.publishing.service import SYNC

    deadline = time.monotonic() + timeout
    attempts = 0
    while time.monotonic() < deadline:
        runner = threading.Thread(target=jobs.run_pending, args=([SYNC],), daemon=True)
        runner.start()
        runner.join(max(0.0, deadline - time.monotonic()))
        if runner.is_alive():
            break
        mine = [j for j in jobs.queue.find(states=[State.QUEUED, State.RUNNING], kind=SYNC)
                if j.key == doi]
        if not mine:
            break
        if mine[0].attempts > attempts:  # say each failed attempt once
            attempts = mine[0].attempts
            print(f"DataCite has not answered (attempt {attempts}: {mine[0].error}); trying "
                  f"again from {mine[0].not_before:%H:%M:%S} UTC", file=sys.stderr)
        time.sleep(poll)
    return publishing.state(None, doi)


def _publish_check(publishing: PublishingService, investigation: int | None) -> int:
    if investigation is not None:
        report = publishing.check_investigation(None, investigation)
        print(report["subject"] + (": can be minted" if report["mintable"]
                                   else ": can't be minted yet"))
        for f in report["findings"]:
            print(f"  {f['level']:<11} {f['property']}: {f['message']}")
        for doi in report["dois"]:
            print(f"  has DOI {doi}")
        return 0 if report["mintable"] else 1
    total = blocked = 0
    for i, label, findings in publishing.check_facility():
        total += 1
        mandatory = [f for f in findings if f.level == "mandatory"]
        if mandatory:
            blocked += 1
            print(f"{i}\t{label}: " + "; ".join(f.message for f in mandatory))
    print(f"{total - blocked} of {total} investigations without a DOI could be minted today; "
          f"{blocked} could not (listed above, with what is missing)")
    return 0


def cmd_sizes(args: argparse.Namespace) -> int:
    """Recount Dataset and Investigation fileSize/fileCount from the datafiles, in one
    transaction: for a catalogue whose sums were never kept (an icat.server database without
    its optional triggers) or were written wrong."""
    from cairn.db import sizes
    from cairn.startup import open_database

    db = open_database(_settings(args))
    started = time.perf_counter()
    with db.begin() as conn:
        fixed = sizes.recompute(conn)
        keeper = sizes.keeper(conn)
    print(f"corrected {fixed.datasets} datasets and {fixed.investigations} investigations "
          f"in {time.perf_counter() - started:.1f} s")
    if keeper is None:
        print("nothing keeps these sums up to date in this database ([catalogue] "
              "keep_file_sizes = false, or the schema is not migrated)", file=sys.stderr)
    return 0


def _show_job(job: Job) -> None:
    import json

    progress = None if job.progress is None else \
        f"{job.progress}" + (f" of {job.progress_total}" if job.progress_total else "")
    for name, value in (("id", job.id), ("kind", job.kind), ("key", job.key),
                        ("state", job.state.lower()), ("priority", job.priority),
                        ("created", job.created), ("not before", job.not_before),
                        ("started", job.started), ("finished", job.finished),
                        ("attempts", job.attempts), ("max attempts", job.max_attempts),
                        ("claimed by", job.claimed_by if job.claim else None),
                        ("heartbeat", job.heartbeat if job.claim else None),
                        ("cancel asked", job.cancel or None), ("progress", progress),
                        ("error", job.error),
                        ("payload", json.dumps(job.payload, sort_keys=True))):
        if value is not None:
            print(f"{name + ':':<14}{value}")


class _Version(argparse.Action):
    """``--version``: Cairn's version and the ICAT version it serves."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show Cairn's version and the ICAT API version it serves")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        from cairn.catalogue.service import API_VERSION

        try:
            mine = version("cairn")
        except PackageNotFoundError:  # run from a source tree that is not installed
            mine = "(not installed)"
        print(f"cairn {mine} (ICAT {API_VERSION})")
        parser.exit()


#: What --log-level accepts (uvicorn's names).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"a TCP port is a number from 1 to 65535, not {text!r}")
    return int(text)


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"the demo's scale is a number above 0 (1 = about "
                                         f"10,000 datafiles), not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cairn", description="The ICAT catalogue, in Python.")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", metavar="FILE", help="TOML configuration file")
        return sp

    s = with_config(sub.add_parser("serve", help="run the server"))
    s.add_argument("--host", help="address to listen on (default: [server] host, 127.0.0.1; "
                                  "0.0.0.0 for every interface)")
    s.add_argument("--port", type=_port,
                   help="TCP port to listen on (default: [server] port, 8080)")
    s.add_argument("--demo", action="store_true", help="load the demo facility if empty")
    s.add_argument("--scale", type=_scale, default=1.0,
                   help="demo size (1 = ~10,000 datafiles)")
    s.add_argument("--file-size", type=_file_size, metavar="SIZE",
                   help="typical size of a demo datafile: 4k (default), 1M, ...")
    s.add_argument("--log-level", default="info", type=str.lower, choices=LOG_LEVELS,
                   metavar="LEVEL", help=f"least important log lines shown: "
                                         f"{', '.join(LOG_LEVELS)} (default info)")
    s.set_defaults(func=cmd_serve)

    d = with_config(sub.add_parser("demo", help="load the demo facility into the catalogue"))
    d.add_argument("--scale", type=_scale, default=1.0, help="1 = ~10,000 datafiles")
    d.add_argument("--file-size", type=_file_size, metavar="SIZE",
                   help="typical size of a demo datafile: 4k (default), 1M, ...")
    d.set_defaults(func=cmd_demo)

    u = with_config(sub.add_parser("user", help="manage users of a db authenticator"))
    u.add_argument("action", choices=["add", "remove", "list"],
                   help="add a user or set its password, remove one, or list them all")
    u.add_argument("name", nargs="?", default="", help="MNEMONIC/NAME, e.g. db/jdoe")
    pw_from = u.add_mutually_exclusive_group()
    pw_from.add_argument("--password", help="the password (visible to `ps` and kept in shell "
                                            "history: prefer the prompt or --password-stdin)")
    pw_from.add_argument("--password-stdin", action="store_true",
                         help="read the password from the first line of standard input "
                              "(also done when standard input is not a terminal)")
    u.set_defaults(func=cmd_user)

    m = with_config(sub.add_parser("migrate", help="create or upgrade the database schema"))
    m.add_argument("--check", action="store_true",
                   help="change nothing: report the revision, what an upgrade would do and "
                        "how the tables differ from those Cairn serves (exit 1 if they do)")
    m.set_defaults(func=cmd_migrate)

    j = with_config(sub.add_parser("jobs", help="list, show, retry or cancel background jobs"))
    jsub = j.add_subparsers(dest="action", required=True)
    jl = jsub.add_parser("list", help="jobs newest first, with counts per kind and state")
    jl.add_argument("--state", action="append",
                    choices=["queued", "running", "done", "failed", "cancelled"],
                    help="only jobs in this state (repeatable)")
    jl.add_argument("--kind", help="only jobs of this kind (e.g. ids.twolevel)")
    jl.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    for action, text in (("show", "everything about one job"),
                         ("retry", "queue a failed or cancelled job again"),
                         ("cancel", "cancel a queued job; ask a running one to stop")):
        ja = jsub.add_parser(action, help=text)
        ja.add_argument("id", type=int, help="the job's id (from `cairn jobs list`)")
    for ja in jsub.choices.values():
        ja.add_argument("--config", metavar="FILE", help="TOML configuration file",
                        default=argparse.SUPPRESS)
    j.set_defaults(func=cmd_jobs)

    se = with_config(sub.add_parser("search", help="free-text search: index status, rebuilds"))
    ssub = se.add_subparsers(dest="action", required=True)
    ssub.add_parser("status", help="documents per indexed entity, rebuilds in progress")
    sr = ssub.add_parser("reindex", help="rebuild the index (as durable jobs)")
    sr.add_argument("--entity", action="append", metavar="ENTITY",
                    help="only this entity (repeatable; default: every indexed one)")
    sr.add_argument("--delete", action="store_true",
                    help="empty the entity's index first (searches miss documents until "
                         "the rebuild reaches them); default: replace block by block")
    sr.add_argument("--wait", action="store_true",
                    help="run the rebuild in this process and wait for it to finish")
    for sa in ssub.choices.values():
        sa.add_argument("--config", metavar="FILE", help="TOML configuration file",
                        default=argparse.SUPPRESS)
    se.set_defaults(func=cmd_search)

    pu = with_config(sub.add_parser("publish", help="DOIs: check, mint, withdraw"))
    psub = pu.add_subparsers(dest="action", required=True)
    pc = psub.add_parser("check", help="what DataCite still needs, for one investigation or "
                                       "for every investigation without a DOI")
    pc.add_argument("investigation", nargs="?", type=int, metavar="ID",
                    help="the investigation's id (default: every one without a DOI)")
    pm = psub.add_parser("mint", help="mint a DOI and wait for DataCite's answer")
    pm.add_argument("what", choices=["investigation", "instrument"],
                    help="what the DOI is for")
    pm.add_argument("id", type=int, help="its id in the catalogue")
    pm.add_argument("--draft", action="store_true",
                    help="an investigation's DOI as a DataCite draft only (publish it later)")
    pw = psub.add_parser("withdraw", help="hide a DOI; its landing page becomes a tombstone")
    pw.add_argument("doi", help="the DOI to withdraw, e.g. 10.5072/inv-42")
    pw.add_argument("--reason", required=True, help="why (shown on the tombstone)")
    pw.add_argument("--replaced-by", metavar="DOI_OR_URL", help="what replaces it")
    for pa in (pm, pw):
        pa.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for DataCite (default 120)")
    for pa in psub.choices.values():
        pa.add_argument("--config", metavar="FILE", help="TOML configuration file",
                        default=argparse.SUPPRESS)
    pu.set_defaults(func=cmd_publish)

    sz = with_config(sub.add_parser("sizes", help="Dataset/Investigation fileSize and fileCount"))
    szr = sz.add_subparsers(dest="action", required=True).add_parser(
        "recompute", help="recount them from the datafiles (one statement per level)")
    szr.add_argument("--config", metavar="FILE", help="TOML configuration file",
                     default=argparse.SUPPRESS)
    sz.set_defaults(func=cmd_sizes)

    # cairn export | import: dumps of the catalogue (cairn.port.cli)
    from cairn.port import cli as port_cli

    port_cli.add_parsers(sub, with_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from cairn import logs

    logs.setup()  # text at INFO, secrets hidden; `serve` applies [logging] once it has read it
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        # What start-up and the tools know can go wrong, as one line (the schema report: a
        # line per difference) and exit status 1; anything else is a bug and shows its
        # traceback.
        if not isinstance(e, _known_failures()):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


def _known_failures() -> tuple[type[Exception], ...]:
    from cairn.db.engine import DatabaseUnavailable
    from cairn.db.migrate import MigrationError
    from cairn.db.schema_check import SchemaMismatch
    from cairn.web.serving import PortUnavailable

    return DatabaseUnavailable, MigrationError, SchemaMismatch, PortUnavailable


if __name__ == "__main__":
    sys.exit(main())
