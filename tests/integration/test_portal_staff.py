"""The staff pages over real HTTP, on every backend: only root users get them; health says
what /ready says; the download queue's actions change what the /topcat admin API reports;
the data page steers the jobs table; and "who can see this" lists exactly the users the
catalogue lets read an investigation, each with the rule that lets them.

The server queues every cart submission with one slot (``max_active = 1``), which a download
by a transport that waits for an outside agent holds for good: a download stays QUEUED until a
staff member acts on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from cairn.db.tables import TABLES
from cairn.demo.accounts import DEMO_PASSWORD
from cairn.demo.rules import AS_SCIENTIST, ON_MY, RELEASED
from tests.conftest import BACKENDS
from tests.integration.portal_support import (
    Browser,
    busiest_scientist,
    demo_server,
    visible_text,
)
from tests.integration.server import Server
from tests.waiting import wait_until

QUEUE_EVERYTHING = """
[downloads]
queue_carts = true
max_active = 1
[downloads.transports.https]
display_name = "HTTPS"
[downloads.transports.agent]
display_name = "Completed by an outside agent"
"""

STAFF_PAGES = ("/staff", "/staff/downloads", "/staff/data", "/staff/access",
               "/staff/access/investigation/1")

_READER = re.compile(r'<tr class="reader" data-rules="([^"]*)">\s*'
                     r'<th scope="row" class="user">([^<]+)</th>')
_ROOT = re.compile(r'<tr class="root-user"><th scope="row" class="user">([^<]+)</th>'
                   r'.*?</tr>', re.S)


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for server in demo_server(str(request.param), tmp_path_factory.mktemp("portal-staff"),
                              extra_config=QUEUE_EVERYTHING):
        hold_the_slot(server)
        yield server


@pytest.fixture
def root(srv: Server, browser_factory: Any) -> Browser:
    b: Browser = browser_factory(srv)
    r = b.sign_in("simple/root", "secret")
    assert r.status_code == 200
    return b


# -- helpers ----------------------------------------------------------------------------------


def rest_login(srv: Server, user: str) -> str | None:
    """A REST session of a demo user (``db/<login>``), None if they cannot sign in."""
    mnemonic, name = user.split("/", 1)
    body = {"plugin": mnemonic, "credentials": [{"username": name},
                                                 {"password": DEMO_PASSWORD}]}
    r = srv.http.post("/icat/session", data={"json": json.dumps(body)})
    return str(r.json()["sessionId"]) if r.status_code == 200 else None


def facility(srv: Server) -> str:
    f = TABLES.entity["Facility"]
    with srv.engine.connect() as conn:
        return str(conn.scalars(select(f.c.name).order_by(f.c.id)).first())


def submit(srv: Server, user: str, investigation: int, name: str, transport: str = "https"
           ) -> int:
    """A download of one investigation, submitted by ``user`` through /topcat."""
    sid = rest_login(srv, user)
    assert sid is not None
    fac = facility(srv)
    r = srv.http.post(f"/topcat/user/cart/{fac}/cartItems",
                      data={"sessionId": sid, "items": f"investigation {investigation}"})
    assert r.status_code == 200, r.text
    r = srv.http.post(f"/topcat/user/cart/{fac}/submit",
                      data={"sessionId": sid, "fileName": name, "transport": transport})
    assert r.status_code == 200, r.text
    return int(r.json()["downloadId"])


def hold_the_slot(srv: Server) -> None:
    """A download by the agent's transport: prepared, it waits RESTORING for an agent that
    never comes, in the server's one slot."""
    user = busiest_scientist(srv)
    holder = submit(srv, user, users_investigation(srv, user), "slot-holder", "agent")
    wait_until(lambda: reported(srv, holder)["status"] == "RESTORING", 60,
               "the agent's download to take the one slot", detail=srv.log_text)


def users_investigation(srv: Server, user: str) -> int:
    """An investigation ``user`` is on."""
    iu, u = TABLES.entity["InvestigationUser"], TABLES.entity["User"]
    with srv.engine.connect() as conn:
        return int(conn.scalars(select(iu.c.investigation)
                                .select_from(iu.join(u, iu.c.user == u.c.id))
                                .where(u.c.name == user).order_by(iu.c.investigation)).first())


def reported(srv: Server, download_id: int) -> dict[str, Any]:
    """The download as the download manager's admin API reports it."""
    r = srv.http.get("/topcat/admin/downloads", params={
        "sessionId": srv.login(), "facilityName": facility(srv),
        "queryOffset": f"where download.id = {download_id}"})
    assert r.status_code == 200, r.text
    found = r.json()
    assert len(found) == 1
    return dict(found[0])


def act(b: Browser, download_id: int, action: str, **fields: Any) -> httpx.Response:
    b.get("/staff/downloads?deleted=all")
    return b.post(f"/staff/download/{download_id}/{action}",
                  {"next": "/staff/downloads?deleted=all", **fields})


def rule_id(srv: Server, what: str) -> int:
    rule = TABLES.entity["Rule"]
    with srv.engine.connect() as conn:
        return int(conn.scalars(select(rule.c.id).where(rule.c.what == what)).one())


def investigation_ids(srv: Server) -> list[int]:
    i = TABLES.entity["Investigation"]
    with srv.engine.connect() as conn:
        return [int(x) for x in conn.scalars(select(i.c.id).order_by(i.c.id))]


# -- who may come in --------------------------------------------------------------------------


def test_a_non_root_is_refused_every_staff_page(srv: Server, browser_factory: Any) -> None:
    stranger: Browser = browser_factory(srv)
    r = stranger.get("/staff/downloads")
    assert r.url.path == "/login" and r.url.params["next"] == "/staff/downloads"
    user = busiest_scientist(srv)
    download = submit(srv, user, users_investigation(srv, user), "not-staff")
    b: Browser = browser_factory(srv)
    b.sign_in(user)
    for path in STAFF_PAGES:
        r = b.get(path)
        assert r.status_code == 403, path
        assert "for the catalogue's administrators" in visible_text(r.text), path
    assert 'href="/staff"' not in b.get("/").text  # no Staff link in the navigation either
    r = b.post(f"/staff/download/{download}/pause", {"next": "/staff/downloads"})
    assert r.status_code == 403
    r = b.post("/staff/job/1/cancel", {})
    assert r.status_code == 403
    assert reported(srv, download)["status"] == "QUEUED"


# -- health ----------------------------------------------------------------------------------


def test_health_shows_the_database_up(srv: Server, root: Browser) -> None:
    ready = srv.http.get("/ready").json()
    r = root.get("/staff")
    assert r.status_code == 200
    row = re.search(r'<tr id="check-database">.*?</tr>', r.text, re.S)
    assert row is not None
    assert visible_text(row.group(0)).startswith("Database up")
    assert ready["checks"]["database"]["status"] == "ok"
    page = visible_text(r.text)
    version = srv.http.get("/health").json()["version"]
    assert f"Cairn {version}" in page
    assert ("Ready: every check passes" in page) == (ready["status"] == "ready")
    assert 'aria-current="page">Staff<' in r.text


# -- the download queue ----------------------------------------------------------------------


def test_pause_resume_and_priorities_as_the_admin_api_reports(srv: Server, root: Browser
                                                               ) -> None:
    user = busiest_scientist(srv)
    download = submit(srv, user, users_investigation(srv, user), "staff-pause")
    assert reported(srv, download)["status"] == "QUEUED"
    r = root.get("/staff/downloads", params={"status": "QUEUED", "user": user})
    assert f'id="download-{download}"' in r.text
    assert root.get("/staff/downloads", params={"status": "COMPLETE"}).text.count(
        f'id="download-{download}"') == 0

    r = act(root, download, "pause")
    assert r.status_code == 200 and r.url.path == "/staff/downloads"
    assert f"Download {download} (staff-pause) is paused." in visible_text(r.text)
    assert reported(srv, download)["status"] == "PAUSED"

    r = act(root, download, "priority", priority="7")
    assert "has queue priority 7" in visible_text(r.text)
    assert reported(srv, download)["priority"] == 7
    r = act(root, download, "priority", priority="0")
    assert r.status_code == 400 and reported(srv, download)["priority"] == 7

    r = act(root, download, "requeue")
    assert "is back in the queue" in visible_text(r.text)
    assert reported(srv, download)["status"] == "QUEUED"

    act(root, download, "pause")
    r = act(root, download, "resume")
    assert "resumes" in visible_text(r.text)
    assert reported(srv, download)["status"] in ("PREPARING", "COMPLETE")
    done = wait_until(lambda: reported(srv, download)["status"] == "COMPLETE", 60,
                      "the resumed download to be prepared", detail=srv.log_text)
    assert done
    r = act(root, download, "resume")  # not paused: refused, nothing changes
    assert r.status_code == 400 and reported(srv, download)["status"] == "COMPLETE"


def test_prepare_again_makes_a_new_zip(srv: Server, root: Browser) -> None:
    user = busiest_scientist(srv)
    download = submit(srv, user, users_investigation(srv, user), "staff-prepare")
    assert reported(srv, download)["status"] == "QUEUED"
    r = act(root, download, "prepare")
    assert "is being prepared again" in visible_text(r.text)

    def ready() -> dict[str, Any] | None:
        d = reported(srv, download)
        return d if d["status"] == "COMPLETE" and d["preparedId"] else None

    first = wait_until(ready, 60, "the download to be prepared", detail=srv.log_text)
    act(root, download, "prepare")
    second = wait_until(lambda: (d := ready()) and d["preparedId"] != first["preparedId"]
                        and d, 60, "a new prepared id", detail=srv.log_text)
    assert second["preparedId"] != first["preparedId"]

    r = act(root, download, "delete")
    assert reported(srv, download)["isDeleted"] is True
    assert f'id="download-{download}"' not in root.get("/staff/downloads").text
    assert f'id="download-{download}"' in root.get("/staff/downloads?deleted=only").text
    act(root, download, "undelete")
    assert reported(srv, download)["isDeleted"] is False


def test_downloads_are_paged_newest_first(srv: Server, root: Browser) -> None:
    user = busiest_scientist(srv)
    inv = users_investigation(srv, user)
    made = [submit(srv, user, inv, f"staff-page-{k}") for k in range(3)]
    seen: list[int] = []
    url: str | None = "/staff/downloads?deleted=all&name=staff-page-"
    while url:
        r = root.get(url)
        assert r.status_code == 200
        seen.extend(int(x) for x in re.findall(r'<tr id="download-(\d+)"', r.text))
        older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', r.text)
        url = "/staff/downloads" + older.group(1).replace("&amp;", "&") if older else None
    assert seen == sorted(made, reverse=True)


# -- the data service and the jobs -----------------------------------------------------------


def test_jobs_can_be_cancelled_and_retried(srv: Server, root: Browser) -> None:
    job = TABLES.job
    with srv.engine.begin() as conn:
        # A kind no server knows: it waits for ever, whatever the scheduler does.
        job_id = int(conn.execute(insert(job).values(
            kind="staff-test.idle", key=None, state="QUEUED", payload="{}", priority=0,
            not_before=datetime(2199, 1, 1), created=datetime(2024, 1, 1), attempts=0,
            max_attempts=5, cancel=False, version=0)).inserted_primary_key[0])

    def state() -> str:
        with srv.engine.connect() as conn:
            return str(conn.scalars(select(job.c.state).where(job.c.id == job_id)).one())

    r = root.get("/staff/data", params={"kind": "staff-test.idle"})
    assert r.status_code == 200 and f'id="job-{job_id}"' in r.text
    page = visible_text(r.text)
    assert "single-level: main storage only" in page
    r = root.post(f"/staff/job/{job_id}/cancel", {"next": "/staff/data?kind=staff-test.idle"})
    assert f"Job {job_id} (staff-test.idle) is cancelled." in visible_text(r.text)
    assert state() == "CANCELLED"
    r = root.post(f"/staff/job/{job_id}/retry", {"next": "/staff/data"})
    assert "is queued again" in visible_text(r.text)
    assert state() == "QUEUED"
    # The periodic tasks' own jobs are not cancelled from here: they would never run again.
    with srv.engine.connect() as conn:
        purge = int(conn.scalars(select(job.c.id).where(job.c.kind == "jobs.purge",
                                                        job.c.key == "jobs.purge",
                                                        job.c.state == "QUEUED")).one())
    r = root.post(f"/staff/job/{purge}/cancel", {"next": "/staff/data"})
    assert r.status_code == 400 and "periodic task" in visible_text(r.text)


# -- who can see this --------------------------------------------------------------------------


def readable_by(srv: Server, investigation: int) -> set[str]:
    """The demo users whose own REST session can get the investigation."""
    u = TABLES.entity["User"]
    with srv.engine.connect() as conn:
        users = list(conn.scalars(select(u.c.name).where(u.c.name.like("db/%"))))
    out = set()
    for user in users:
        sid = rest_login(srv, user)
        if sid is None:
            continue
        r = srv.http.get("/icat/entityManager", params={
            "sessionId": sid, "query": "Investigation", "id": investigation})
        if r.status_code == 200:
            out.add(user)
        else:
            assert r.json()["code"] == "INSUFFICIENT_PRIVILEGES", r.text
    return out


def expected_rules(srv: Server, investigation: int) -> dict[str, set[int]]:
    """Users on the investigation (rule ON_MY) and scientists of its instruments
    (AS_SCIENTIST), from the tables."""
    t = TABLES.entity
    iu, u, ii, isc = (t[n] for n in ("InvestigationUser", "User", "InvestigationInstrument",
                                     "InstrumentScientist"))
    on_my = rule_id(srv, f"SELECT i FROM Investigation i {ON_MY}")
    scientist = rule_id(srv, f"SELECT i FROM Investigation i {AS_SCIENTIST}")
    out: dict[str, set[int]] = {}
    with srv.engine.connect() as conn:
        for name in conn.scalars(select(u.c.name).select_from(iu.join(u, iu.c.user == u.c.id))
                                 .where(iu.c.investigation == investigation)):
            out.setdefault(name, set()).add(on_my)
        for name in conn.scalars(
                select(u.c.name).select_from(
                    ii.join(isc, isc.c.instrument == ii.c.instrument)
                    .join(u, isc.c.user == u.c.id))
                .where(ii.c.investigation == investigation)):
            out.setdefault(name, set()).add(scientist)
    return out


def test_access_lists_exactly_who_can_read_a_private_investigation(srv: Server,
                                                                  root: Browser) -> None:
    private = next(i for i in investigation_ids(srv) if i % 3 != 0)
    r = root.get(f"/staff/access/investigation/{private}")
    assert r.status_code == 200
    listed = {user: {int(x) for x in rules.split()} for rules, user in _READER.findall(r.text)}
    assert listed, "nobody listed"
    readers = readable_by(srv, private)
    # Exactly the users the catalogue lets read it (root users aside), each with its rule.
    assert set(listed) - {"db/root"} == readers - {"db/root"}
    assert listed == {k: v for k, v in expected_rules(srv, private).items() if k in listed}
    roots = dict(re.findall(r'<tr class="root-user"><th scope="row" class="user">([^<]+)</th>'
                            r'.*?<td data-label="Through">([^<]+)</td>', r.text))
    assert roots == {"db/root": "root (all access)", "simple/root": "root (all access)"}
    page = visible_text(r.text)
    assert "Everyone (public)" not in page
    assert f"{len(listed)} users can read it, besides the root users" in page
    released = rule_id(srv, f"SELECT i FROM Investigation i {RELEASED}")
    row = re.search(rf'<tr id="rule-{released}" class="([^"]+)">', r.text)
    assert row is not None and row.group(1) == "does-not-hold"


def test_a_public_investigation_is_everyones_through_its_rule(srv: Server,
                                                             root: Browser) -> None:
    public = next(i for i in investigation_ids(srv) if i % 3 == 0)
    released = rule_id(srv, f"SELECT i FROM Investigation i {RELEASED}")
    r = root.get(f"/staff/access/investigation/{public}")
    assert r.status_code == 200
    everyone = re.search(r'<p class="notice" id="everyone">(.*?)</p>', r.text, re.S)
    assert everyone is not None
    text = visible_text(everyone.group(0))
    assert text.startswith("Everyone (public)") and f"rule {released}" in text
    # And it is: every demo user can read it.
    u = TABLES.entity["User"]
    with srv.engine.connect() as conn:
        demo_users = set(conn.scalars(select(u.c.name).where(u.c.name.like("db/%"))))
    assert readable_by(srv, public) == {n for n in demo_users if rest_login(srv, n)}


def test_access_lookup_by_name_and_by_id(srv: Server, root: Browser) -> None:
    i = TABLES.entity["Investigation"]
    with srv.engine.connect() as conn:
        inv_id, name = conn.execute(select(i.c.id, i.c.name).order_by(i.c.id)).first()
    r = root.get("/staff/access", params={"investigation": name})
    assert f'href="/staff/access/investigation/{inv_id}"' in r.text
    r = root.get("/staff/access", params={"investigation": str(inv_id)})
    assert r.url.path == f"/staff/access/investigation/{inv_id}"
    r = root.get("/staff/access/investigation/999999999")
    assert r.status_code == 404
