"""SOAP through python-icat against REST through httpx, on the same Cairn in the same run.

    .venv/bin/python bench/soap_vs_rest.py [--database URL] [--entities 1000] [--repeat 5]

Starts Cairn on a fresh catalogue (SQLite in a temporary folder unless ``--database`` names an
empty database), then times, as the median of ``--repeat`` runs:

- login (python-icat ``client.login`` / ``POST /icat/session``);
- a search returning ``--entities`` datasets with INCLUDE 1 (python-icat ``client.search``,
  which builds python-icat entity objects / ``GET /icat/entityManager`` + ``json()``);
- creating ``--entities`` datafiles in one call (python-icat ``client.createMany`` /
  ``POST /icat/entityManager``).

It prints milliseconds for each and the SOAP/REST ratio (REST is the baseline). Client-side
work is included on both sides, as a user of either interface experiences it. A third column
posts the same SOAP envelopes with httpx (no suds), which separates the server's cost of SOAP
from suds' own marshalling and unmarshalling, usually most of python-icat's time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cairn_process import launch_catalogue

USER, PASSWORD = "root", "secret"
ENVELOPE = ('<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:ns0="http://icatproject.org"><e:Body><ns0:{op}>{inner}</ns0:{op}></e:Body>'
            "</e:Envelope>")



def start(work: Path, database: str) -> tuple[subprocess.Popen[bytes], str]:
    return launch_catalogue(work, database, USER, PASSWORD, catalogue="max_entities = 100000")


def median_ms(fn: Callable[[int], Any], repeat: int) -> float | str:
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        try:
            fn(i)
        except Exception as e:  # report what does not work yet instead of stopping
            return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:70]}"
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", help="SQLAlchemy URL of an empty database")
    p.add_argument("--entities", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()

    import icat  # python-icat, from the test extra

    n = args.entities
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-soap-"))
    proc, url = start(work, args.database or f"sqlite:///{work / 'catalogue.db'}")
    rest = httpx.Client(base_url=url, timeout=300)
    client = icat.Client(url + "/ICATService/ICAT?wsdl", cache=None)
    client.autoLogout = False
    try:
        client.login("simple", {"username": USER, "password": PASSWORD})
        creds = {"plugin": "simple", "credentials": [{"username": USER}, {"password": PASSWORD}]}

        def rest_login(_: int = 0) -> str:
            r = rest.post("/icat/session", data={"json": json.dumps(creds)})
            r.raise_for_status()
            return str(r.json()["sessionId"])

        sid = rest_login()

        # Fixture: one investigation holding n datasets.
        fac = client.new("Facility", name="bench")
        fac.create()
        itype = client.new("InvestigationType", name="exp", facility=fac)
        dtype = client.new("DatasetType", name="raw", facility=fac)
        itype.create()
        dtype.create()
        inv = client.new("Investigation", name="inv", visitId="1", title="Bench", facility=fac,
                         type=itype)
        inv.create()
        client.createMany([client.new("Dataset", name=f"ds{i:05d}", investigation=inv,
                                      type=dtype) for i in range(n)])
        target = client.new("Dataset", name="files", investigation=inv, type=dtype)
        target.create()

        results: list[tuple[str, float | str, float | str, float | str]] = []

        def raw(op: str, inner: str) -> bytes:
            r = rest.post("/ICATService/ICAT", content=ENVELOPE.format(op=op, inner=inner))
            if r.status_code != 200:
                raise RuntimeError(r.text[:200])
            return r.content

        def soap_login(_: int) -> None:
            client.login("simple", {"username": USER, "password": PASSWORD})

        def raw_login(_: int) -> None:
            raw("login", f"<plugin>simple</plugin><credentials><entry><key>username</key>"
                f"<value>{USER}</value></entry><entry><key>password</key><value>{PASSWORD}"
                "</value></entry></credentials>")

        results.append(("login", median_ms(soap_login, args.repeat * 4),
                        median_ms(raw_login, args.repeat * 4),
                        median_ms(rest_login, args.repeat * 4)))

        jpql = f"SELECT ds FROM Dataset ds WHERE ds.investigation.id = {inv.id} INCLUDE 1"
        query = jpql
        try:
            client.search(jpql + " LIMIT 0, 1")
        except icat.ICATError:
            query = "Dataset INCLUDE 1"  # until the query language lands

        def soap_search(_: int) -> None:
            found = client.search(query)
            assert len(found) >= n, len(found)

        def rest_search(_: int) -> None:
            r = rest.get("/icat/entityManager", params={"sessionId": sid, "query": query})
            r.raise_for_status()
            assert len(r.json()) >= n

        def raw_search(_: int) -> None:
            raw("search", f"<sessionId>{sid}</sessionId><query>{query}</query>")

        results.append((f"search {n} datasets INCLUDE 1", median_ms(soap_search, args.repeat),
                        median_ms(raw_search, args.repeat), median_ms(rest_search, args.repeat)))

        def soap_create(i: int) -> None:
            client.createMany([client.new("Datafile", name=f"s{i}-{j:05d}", dataset=target,
                                          fileSize=j) for j in range(n)])

        def rest_create(i: int) -> None:
            entities = [{"Datafile": {"name": f"r{i}-{j:05d}", "dataset": {"id": target.id},
                                      "fileSize": j}} for j in range(n)]
            r = rest.post("/icat/entityManager",
                          data={"sessionId": sid, "entities": json.dumps(entities)})
            r.raise_for_status()

        def raw_create(i: int) -> None:
            beans = "".join(f'<beans xsi:type="ns0:datafile"><dataset><id>{target.id}</id>'
                            f"<complete/></dataset><fileSize>{j}</fileSize><name>x{i}-{j:05d}"
                            "</name></beans>" for j in range(n))
            raw("createMany", f"<sessionId>{sid}</sessionId>{beans}")

        results.append((f"createMany {n} datafiles", median_ms(soap_create, args.repeat),
                        median_ms(raw_create, args.repeat), median_ms(rest_create, args.repeat)))
    finally:
        with contextlib.suppress(Exception):
            client.logout()
        rest.close()
        proc.terminate()
        proc.wait(15)

    print(f"query: {query}")
    print(f"{'operation':<32}{'python-icat ms':>16}{'raw SOAP ms':>13}{'REST ms':>9}"
          f"{'python-icat/REST':>18}{'raw SOAP/REST':>15}")
    for name, s, w, r in results:
        if isinstance(s, float) and isinstance(w, float) and isinstance(r, float):
            print(f"{name:<32}{s:>16.1f}{w:>13.1f}{r:>9.1f}{s / r:>17.2f}x{w / r:>14.2f}x")
        else:
            print(f"{name:<32}  python-icat: {s}  raw SOAP: {w}  REST: {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
