"""Signing in to the demo: passwords of the demo users, and how to sign in as whom.

Every demo user (``db/<login>``) gets the password :data:`DEMO_PASSWORD` in the ``db``
authenticator's table, so the demo can be tried as a scientist, an instrument scientist or
root. One hash serves them all: hashing costs about 50 ms on purpose, which a few thousand
users would feel at every demo start.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, insert, select

from cairn.authn.passwords import hash_password, verify_password
from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work

#: The password of every demo user (documented in the README; the demo's data is fictional).
DEMO_PASSWORD = "demo"
#: The authenticator mnemonic of the demo's users (their names are ``db/<login>``).
MNEMONIC = "db"


def set_passwords(work: Work, users: Iterable[str], password: str) -> int:
    """Give the ``db/`` users among ``users`` ``password``; users with a password already
    (root, say) keep theirs. Returns how many were set."""
    t = work.db.tables.passwd
    # MariaDB compares names ignoring case and trailing spaces: skip those too, or the
    # primary key would refuse the insert.
    have = {n.casefold().rstrip() for (n,) in work.conn.execute(select(t.c.userName))}
    prefix = f"{MNEMONIC}/"
    names = [u[len(prefix):] for u in users if u.startswith(prefix)]
    new = [n for n in names if n.casefold().rstrip() not in have]
    if new:
        encoded = hash_password(password)
        work.conn.execute(insert(t), [{"userName": n, "encodedPassword": encoded} for n in new])
    return len(new)


def sign_in_help(catalogue: Catalogue, root_user: str, root_created: bool,
                 program: str = "cairn") -> list[str]:
    """Lines telling a person how to sign in to the demo: as its busiest scientist and as an
    instrument scientist (while they still have the demo password), and as root (its
    password, or how to set a new one with ``program``). ``root_created``: its password was
    just printed."""
    settings = catalogue.settings
    url = f"{settings.public_url}/icat/session"
    portal = f"{settings.public_url}/" if settings.portal.enabled else None
    lines = [f"Sign in to the demo in a browser at {portal} or over REST (POST {url}):"
             if portal else f"Sign in to the demo (POST {url}):"]
    people = []
    with catalogue.as_system(read_only=True) as work:
        candidates = [p for p in _people(work) if p is not None]
        stored = _passwords(work, [name for _, name, _ in candidates] + [root_user])
    authn = settings.authn.get(MNEMONIC)
    if authn is None or authn.type != "db":
        lines.append(f"  demo users (db/<login>) cannot: this configuration has no "
                     f"[authn.{MNEMONIC}] of type \"db\"")
    else:
        people = [p for p in candidates
                  if verify_password(DEMO_PASSWORD, stored.get(p[1]))]
    for role, name, what in people:
        lines.append(f"  {role + ':':<22}{name}  password {DEMO_PASSWORD!r}  ({what})")
    mnemonic = root_user.partition("/")[0]
    root_authn = settings.authn.get(mnemonic)
    if root_authn is None or root_authn.type != "db":
        how = f"through the {mnemonic!r} authenticator"
    elif root_created:
        how = "with the password printed above"
    elif stored.get(root_user) is None:
        how = (f"`{program} serve` creates it and prints its password; `{program} user add "
               f"{root_user}` sets one now")
    else:
        how = (f"with the password printed when the account was created; forgot it? "
               f"`{program} user add {root_user}` sets a new one")
    lines.append(f"  {'root:':<22}{root_user}  {how}")
    if portal:
        lines.append(f"  {'':<22}(root users also see the staff pages, {portal}staff)")
    if people:
        login = people[0][1].split("/", 1)[1]
        lines.append(f"  e.g.  curl -s -d 'json={{\"plugin\":\"{MNEMONIC}\",\"credentials\":"
                     f"[{{\"username\":\"{login}\"}},{{\"password\":\"{DEMO_PASSWORD}\"}}]}}' "
                     f"{url}")
    return lines


def _people(work: Work) -> list[tuple[str, str, str] | None]:
    """(role, name, what they see) of the demo user on most investigations and of the first
    instrument scientist."""
    t = work.tables
    user, iu, inv = t["User"], t["InvestigationUser"], t["Investigation"]
    released = work.conn.execute(select(func.count()).select_from(inv).where(
        inv.c.releaseDate < work.now)).scalar_one()
    busiest = work.conn.execute(
        select(user.c.name, func.count().label("n")).join(iu, iu.c.user == user.c.id)
        .where(user.c.name.like(f"{MNEMONIC}/%"))
        .group_by(user.c.id, user.c.name).order_by(func.count().desc(), user.c.id).limit(1)
    ).first()
    scientist = None if busiest is None else (
        "scientist", busiest[0], f"on {busiest[1]} investigations; reads those and the "
                                 f"{released} released ones")
    sci, ins, ii = t["InstrumentScientist"], t["Instrument"], t["InvestigationInstrument"]
    first = work.conn.execute(
        select(user.c.name, ins.c.id, ins.c.name).join(sci, sci.c.user == user.c.id)
        .join(ins, sci.c.instrument == ins.c.id).order_by(sci.c.id).limit(1)).first()
    staff = None
    if first is not None:
        n = work.conn.execute(select(func.count()).select_from(ii).where(
            ii.c.instrument == first[1])).scalar_one()
        staff = ("instrument scientist", first[0],
                 f"{first[2]}: reads its {n} investigations and the released ones")
    return [scientist, staff]


def _passwords(work: Work, names: list[str]) -> dict[str, str | None]:
    """Stored passwords of the ``db/`` users among ``names``, by full name."""
    t = work.db.tables.passwd
    prefix = f"{MNEMONIC}/"
    logins = [n[len(prefix):] for n in names if n.startswith(prefix)]
    rows = work.conn.execute(
        select(t.c.userName, t.c.encodedPassword).where(t.c.userName.in_(logins)))
    return {prefix + n: p for n, p in rows if n in logins}
