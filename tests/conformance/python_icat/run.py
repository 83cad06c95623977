"""python-icat 1.7.0's own test suite, run against freshly started Cairns.

    .venv/bin/python tests/conformance/python_icat/run.py [--database URL] [--keep]
        [--workdir DIR] [--only single-level|two-level] [--full-two-level] [-- PYTEST-ARGS]

Downloads the python-icat 1.7.0 source distribution from PyPI (nothing of it is committed),
prepares its test directory as its own ``setup.py build_test`` does, and runs the suite
(including the tests marked slow) once per data-service configuration, side by side, each on
its own copy of the suite against its own Cairn on a new catalogue (SQLite in the work
directory; with ``--database``, one catalogue, and the configurations in turn) with
the users the suite expects, written into ``tests/data/icat.cfg`` (with ``idsurl`` when
Cairn's data service answers ``/ids/ping``):

- ``single-level``: main storage only; the whole suite;
- ``two-level``: main storage in front of an archive (dataset unit, one-second write delay
  and queue interval, so archive/restore/write complete while the tests poll); only the test
  modules that use the data service (:data:`DATA_SERVICE_TESTS`) unless ``--full-two-level``.

For each it prints ``<configuration>: N passed, N failed, N skipped`` (errors count as
failed) after the failures grouped by the reason pytest reported, then both summaries again.
Exit status 0 only if nothing failed in either configuration.

This is deliberately not part of the default ``pytest`` run: it takes minutes and depends on
the query language, rule-based authorization and the data service being complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from lxml import etree

VERSION = "1.7.0"
PASSWORD = "secret"
#: Users of the suite's icat.cfg: section -> (authenticator, user name).
SECTIONS = {
    "root": ("simple", "root"),
    "useroffice": ("simple", "useroffice"),
    "idsreader": ("simple", "idsreader"),
    # The reference content makes simple/dataingest the member of grouping "ingest".
    "ingest": ("simple", "dataingest"),
    "pubreader": ("simple", "pubreader"),
    **{u: ("db", u) for u in ("acord", "ahau", "jbotu", "jdoe", "nbour", "rbeck")},
}
#: python-icat's test modules that touch the data service: every test that calls client.ids,
#: skips without an idsurl, runs an example script using it (getversion.py), or deletes its
#: datasets through it (the ``cleanup_objs`` fixture). The session fixture's wipeicat.py
#: also uses it, so every run exercises that too.
DATA_SERVICE_TESTS = ["test_03_getversion.py", "test_03_login.py", "test_03_script.py",
                      "test_06_exception.py", "test_06_icatingest.py", "test_06_ids.py",
                      "test_06_ingest.py", "test_07_client_clone.py",
                      "test_07_client_options.py", "test_07_entity_validate.py"]


@dataclass(frozen=True)
class Configuration:
    name: str
    #: Body of Cairn's ``[data]`` table besides ``main``; ``{work}`` is this configuration's
    #: work folder.
    data: str
    #: Test modules to run; None = the whole suite.
    tests: list[str] | None


SINGLE = Configuration("single-level", "", None)
# Short delays so that archive, restore and write finish while python-icat polls for them.
TWO_LEVEL = Configuration("two-level", """archive = "{work}/archive"
storage_unit = "dataset"
write_delay_seconds = 1
queue_interval_seconds = 1
""", DATA_SERVICE_TESTS)


def log(message: str) -> None:
    print(f"[conformance] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_sdist(work: Path) -> Path:
    """Download and unpack the sdist; return its top folder."""
    dl = work / "download"
    dl.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--no-binary", ":all:", f"python-icat=={VERSION}", "-d", str(dl)],
                   check=True)
    (archive,) = dl.glob("python*icat-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    (top,) = [p for p in work.glob("python*icat-*") if p.is_dir()]
    return top


def build_test(top: Path) -> Path:
    """Copy example scripts and test data into tests/, exactly as ``setup.py build_test``."""
    subprocess.run([sys.executable, "setup.py", "--quiet", "build_test"], cwd=top, check=True,
                   stdout=subprocess.DEVNULL)
    return top / "tests"


def ensure_locale() -> None:
    """python-icat's conftest sets LC_CTYPE to en_US.UTF-8; create it when missing."""
    probe = [sys.executable, "-c", "import locale; locale.setlocale(locale.LC_CTYPE, "
             "'en_US.UTF-8')"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return
    if shutil.which("localedef"):
        log("creating the en_US.UTF-8 locale (localedef)")
        subprocess.run(["localedef", "-i", "en_US", "-f", "UTF-8", "en_US.UTF-8"], check=False)
    if subprocess.run(probe, capture_output=True).returncode != 0:
        log("warning: locale en_US.UTF-8 is not available; python-icat's conftest will fail")


def check_client() -> None:
    import icat  # the installed client the suite imports (test extra of pyproject.toml)

    if icat.__version__ != VERSION:
        sys.exit(f"python-icat {VERSION} must be installed (found {icat.__version__}); "
                 "pip install -e '.[test]'")


def cairn_config(work: Path, database: str, port: int, data: str = "") -> Path:
    simple = "\n".join(f'{name} = "{PASSWORD}"' for auth, name in SECTIONS.values()
                       if auth == "simple")
    path = work / "cairn.toml"
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
data_dir = "{work / 'cairn-data'}"

[catalogue]
database = "{database}"
root_users = ["simple/root"]
# python-icat's reference dump comes from a server in Berlin: date-only values it ingests
# (``endDate: 2019-12-31``) are midnight in the server's zone.
time_zone = "Europe/Berlin"
# Its reference dumps come from a server without icat.server's optional size triggers
# (datasets with files have fileCount 0): Cairn's are left out to match.
keep_file_sizes = false

[authn.simple]
type = "simple"
[authn.simple.users]
{simple}

[authn.db]
type = "db"

[data]
{data}""")
    return path


def add_db_users(config: Path) -> None:
    from cairn.authn import db as db_authn
    from cairn.config import load_settings
    from cairn.startup import open_database

    db = open_database(load_settings(config))
    for auth, name in SECTIONS.values():
        if auth == "db":
            db_authn.set_password(db, name, PASSWORD)
    db.dispose()


def start_cairn(config: Path, url: str, logfile: Path) -> subprocess.Popen[bytes]:
    out = logfile.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli", "serve", "--config", str(config),
                             "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"Cairn exited: {logfile.read_text()}")
        try:
            if httpx.get(url + "/icat/version", timeout=5).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling interval (not yet answering, or not yet 200)
    proc.kill()
    sys.exit(f"Cairn did not answer {url}/icat/version within 120 s: {logfile.read_text()}")


def has_data_service(url: str) -> bool:
    try:
        return httpx.get(url + "/ids/ping", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def write_icat_cfg(tests: Path, url: str, ids: bool) -> None:
    """One section per user; ``idsurl`` only when Cairn's data service answers (without it
    python-icat skips its data-service tests)."""
    sections = []
    for section, (auth, name) in SECTIONS.items():
        sections.append(f"[{section}]\nurl = {url}/ICATService/ICAT?wsdl\nauth = {auth}\n"
                        f"username = {name}\npassword = {PASSWORD}\n"
                        + (f"idsurl = {url}/ids\n" if ids else ""))
    (tests / "data" / "icat.cfg").write_text("\n".join(sections))


def run_suite(tests: Path, work: Path, extra: list[str], timeout: float) -> Path | None:
    report = work / "junit.xml"
    tmp = work / "tmp"  # fresh TMPDIR: suds caches WSDLs there for a day
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "LANG": "en_US.UTF-8", "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "pytest", "--no-skip-slow", "-p", "no:cacheprovider",
           "-o", "junit_family=xunit1", "-o", "junit_logging=system-err",
           f"--junitxml={report}", "-q", "-rN", *extra]
    log(f"running python-icat's tests: {' '.join(cmd[3:])}")
    with (work / "pytest.log").open("wb") as out:
        try:
            subprocess.run(cmd, cwd=tests, env=env, stdout=out, stderr=subprocess.STDOUT,
                           timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"the suite did not finish within {timeout:.0f} s")
            return None  # a partial report must not pass for a clean run
    return report


def _reason(case: etree._Element, child: etree._Element) -> str:
    """The first line of the failure; for a failed example script, the script's own error."""
    first = (child.get("message") or child.tag).strip().splitlines() or [child.tag]
    reason = first[0]
    if reason.startswith("subprocess.CalledProcessError"):
        script = reason.split("/scripts/")[-1].split("'")[0]
        err = "".join(e.text or "" for e in case.iter("system-err")).strip().splitlines()
        errors = [line for line in err if "Error" in line and not line.startswith(" ")]
        reason = f"{script}: {errors[-1] if errors else 'exit status 1'}"
    return reason[:160]


def summarise(report: Path | None) -> tuple[Counter[str], dict[str, list[str]]]:
    counts: Counter[str] = Counter()
    reasons: dict[str, list[str]] = {}
    if report is None or not report.is_file():
        return counts, reasons
    for case in etree.parse(str(report)).iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                reasons.setdefault(_reason(case, child), []).append(name)
            elif child.tag == "skipped":
                outcome = "skipped"
        counts[outcome] += 1
    return counts, reasons


SETTING_UP = threading.Lock()


def run_configuration(conf: Configuration, tests: Path, work: Path, main: Path,
                      database: str | None, extra: list[str], timeout: float, full: bool,
                      keep: bool) -> tuple[Counter[str], str]:
    """Start a Cairn for ``conf``, run the suite against it; its counts, and its failures and
    summary as text."""
    work.mkdir(parents=True, exist_ok=True)
    log(f"== {conf.name}: work folder {work}")
    proc = None
    report = None
    try:
        with SETTING_UP:  # Alembic's context is one per process: one catalogue at a time
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            config = cairn_config(work, database or f"sqlite:///{work / 'catalogue.db'}",
                                  port, f'main = "{main}"\n' + conf.data.format(work=work))
            add_db_users(config)
            proc = start_cairn(config, url, work / "cairn.log")
        ids = has_data_service(url)
        log(f"{conf.name}: data service "
            f"{'yes' if ids else 'not answering /ids/ping; its tests will skip'}")
        write_icat_cfg(tests, url, ids)
        selected = [] if full or conf.tests is None else conf.tests
        report = run_suite(tests, work, [*selected, *extra], timeout)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    counts, reasons = summarise(report)
    lines = [f"\n== {conf.name}"]
    for reason, names in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"\n{len(names)} failed: {reason}")
        lines += [f"    {n}" for n in names[:8]]
        if len(names) > 8:
            lines.append(f"    ... and {len(names) - 8} more")
    if keep:
        lines.append(f"\nlogs: {work / 'pytest.log'}, {work / 'cairn.log'}")
    lines.append(summary_line(conf, counts))
    return counts, "\n".join(lines)


def summary_line(conf: Configuration, counts: Counter[str]) -> str:
    scope = "whole suite" if conf.tests is None else "data-service tests"
    verdict = "ok" if ok(counts) else (
        "FAILED" if counts["failed"] else "FAILED: no results (see the log above)")
    return (f"{conf.name} ({scope}): {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped: {verdict}")


def ok(counts: Counter[str]) -> bool:
    """Nothing failed, and something ran (an empty report means the run itself broke)."""
    return not counts["failed"] and counts["passed"] > 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", help="SQLAlchemy URL of an empty database (default: SQLite "
                   "per configuration); the configurations run one after the other on it")
    p.add_argument("--workdir", type=Path, help="folder to work in (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds for the suite, per configuration")
    p.add_argument("--only", choices=[SINGLE.name, TWO_LEVEL.name],
                   help="run one configuration only")
    p.add_argument("--full-two-level", action="store_true",
                   help="run the whole suite in the two-level configuration too")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args(argv)

    check_client()
    ensure_locale()
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="cairn-python-icat-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(f"work folder {work}")
    confs = [c for c in (SINGLE, TWO_LEVEL) if args.only in (None, c.name)]
    tests = build_test(fetch_sdist(work))
    keep = args.keep or args.workdir is not None

    def run(conf: Configuration) -> tuple[Counter[str], str]:
        # One catalogue database (--database) means one main storage, so that the locations
        # it holds from the previous configuration's run stay valid; else each has its own,
        # and its own copy of the suite (the suite's icat.cfg names the Cairn it talks to).
        if args.database:
            return run_configuration(conf, tests, work / conf.name, work / "main",
                                     args.database, args.pytest_args, args.timeout,
                                     args.full_two_level, keep)
        own = work / conf.name / tests.parent.name  # the whole tree: paths stay as they were
        if not own.exists():
            shutil.copytree(tests.parent, own, symlinks=True)
        return run_configuration(conf, own / "tests", work / conf.name, work / conf.name / "main",
                                 None, args.pytest_args, args.timeout, args.full_two_level,
                                 keep)

    # each configuration waits on its Cairn most of the time: on their own catalogues they
    # run side by side
    with ThreadPoolExecutor(max_workers=1 if args.database else len(confs)) as pool:
        outcomes = list(pool.map(run, confs))
    results: list[tuple[Configuration, Counter[str]]] = []
    for conf, (counts, text) in zip(confs, outcomes, strict=True):
        print(text, flush=True)
        results.append((conf, counts))
    print("\npython-icat 1.7.0 conformance:")
    for conf, counts in results:
        print(f"  {summary_line(conf, counts)}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(ok(counts) for _, counts in results) else 1


if __name__ == "__main__":
    sys.exit(main())
