"""How much cyclic garbage compiling a search leaves for the garbage collector.

    .venv/bin/python bench/compile_garbage.py [--queries 300] [--user]

Compiles portal searches whose texts differ only in an id (as ``bench/soak.py``'s do, so each
is compiled afresh and an older one evicted from the bounded caches), builds the SQL each
page runs (``query.prepared``) and, with ``--user``, the authorization predicates of the demo's
read rules for it, all with the collector disabled; then one full collection says how many
objects in reference cycles those left and how long it took. The caches are filled first, so
evicted entries count too. Run it before and after a change to the compiler; the collector's
pause in a server is this work multiplied by its request rate (``bench/soak.py --gc-probe``).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections import Counter
from typing import Any

from cairn import cache
from cairn.authz.policy import Authorizer, Rule
from cairn.authz.rules import anchor, compile_rule, interpret
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import rules as demo_rules
from cairn.query.compiler import IdPath
from cairn.query.execute import _prepared, queries_for

TEXTS = (
    "SELECT ds FROM Dataset ds WHERE ds.investigation.id = {} ORDER BY ds.id "
    "INCLUDE ds.type, ds.parameters LIMIT 10, 10",
    "SELECT df FROM Datafile df WHERE df.dataset.id = {} ORDER BY df.name "
    "INCLUDE df.datafileFormat LIMIT 20, 20",
    "SELECT COUNT(df) FROM Datafile df WHERE df.dataset.investigation.id = {}",
)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--user", action="store_true",
                   help="also build the read predicates of a user under the demo's rules")
    p.add_argument("--kinds", action="store_true",
                   help="say which types the garbage is (keeps it: the pause is then not "
                        "a server's)")
    args = p.parse_args()
    cache.REAPER.every = 10**9  # no collections from evictions while counting
    db = Database(f"sqlite:///{tempfile.mkdtemp(prefix='cairn-bench-garbage-')}/g.db")
    migrate.upgrade(db)
    authz = Authorizer(db, ["root"])
    rules = []
    for i, (what, flags) in enumerate(r for r in demo_rules.rules() if r[1] == "R"):
        meaning = interpret(what, flags)
        rules.append(Rule(i, flags, None, meaning, compile_rule(db, meaning), anchor(meaning)))

    def restrict(ip: IdPath) -> Any:
        # Authorizer.predicate without a unit of work: same cache, same key
        mine = [r for r in rules if r.meaning.bean == ip.entity]
        if any(not r.meaning.restricted for r in mine):
            return None
        key = (ip.entity, id(ip.column), *(id(r.query) for r in mine))
        hit = authz._predicates.get(key)
        if hit is None:
            hit = (authz.rules_condition(ip.entity, ip.column, mine), ip.column)
            authz._predicates.put(key, hit)
        return hit[0]

    queries, dialect = queries_for(db), db.engine.dialect

    def page(i: int) -> None:
        q = queries.search(TEXTS[i % len(TEXTS)].format(i))
        _prepared(q, 21, 0, dialect, restrict if args.user else None)

    for i in range(600):  # every cache full: from now on each page evicts older ones
        page(i)
    gc.collect()
    gc.freeze()
    gc.disable()
    start = time.perf_counter()
    for i in range(1000, 1000 + args.queries):
        page(i)
    took = time.perf_counter() - start
    gc.unfreeze()  # the collection a server makes: start-up heap included
    tracked = len(gc.get_objects())
    if args.kinds:
        gc.set_debug(gc.DEBUG_SAVEALL)
    start = time.perf_counter()
    found = gc.collect()
    pause = time.perf_counter() - start
    n = args.queries
    print(f"{'user' if args.user else 'root'}: {n} searches compiled: {found:,} objects in "
          f"cycles ({found / n:,.0f} per search), {took / n * 1000:.2f} ms per search; "
          f"then one full collection over {tracked:,} tracked objects: {pause * 1000:.0f} ms; "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.kinds:
        kinds = Counter(type(o).__name__ for o in gc.garbage).most_common(6)
        gc.set_debug(0)
        gc.garbage.clear()
        print("  most common: " + ", ".join(f"{k} {c:,}" for k, c in kinds))


if __name__ == "__main__":
    main()
