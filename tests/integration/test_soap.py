"""The SOAP interface over real HTTP on every backend: raw envelopes and python-icat as client."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lxml import etree

from tests.integration.server import Server

ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://icatproject.org"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ENDPOINT = "/ICATService/ICAT"


def envelope(op: str, inner: str = "", prefix: str = "ns0") -> bytes:
    return (f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{ENV}" xmlns:xsi="{XSI}" '
            f'xmlns:{prefix}="{TNS}"><SOAP-ENV:Header/><SOAP-ENV:Body>'
            f"<{prefix}:{op}>{inner}</{prefix}:{op}></SOAP-ENV:Body></SOAP-ENV:Envelope>"
            ).encode()


def post(server: Server, body: bytes | Iterator[bytes]) -> httpx.Response:
    return server.http.post(ENDPOINT, content=body,
                            headers={"Content-Type": "text/xml; charset=utf-8",
                                     "SOAPAction": '""'})


def call(server: Server, op: str, inner: str = "") -> list[etree._Element]:
    """The ``return`` elements of a successful call."""
    r = post(server, envelope(op, inner))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(r.content)
    resp = root.find(f"{{{ENV}}}Body/{{{TNS}}}{op}Response")
    assert resp is not None, r.text
    return list(resp)


def fault(server: Server, body: bytes) -> tuple[str, str, int, str]:
    """(type, message, offset, faultcode) of a call that must fail."""
    r = post(server, body)
    assert r.status_code == 500, r.text
    f = etree.fromstring(r.content).find(f"{{{ENV}}}Body/{{{ENV}}}Fault")
    exc = f.find(f"detail/{{{TNS}}}IcatException")
    assert f.findtext("faultstring") == exc.findtext("message")
    return (exc.findtext("type"), exc.findtext("message"), int(exc.findtext("offset")),
            f.findtext("faultcode"))


def fault_of(server: Server, op: str, inner: str = "") -> tuple[str, str, int]:
    return fault(server, envelope(op, inner))[:3]


def login(server: Server, user: str = "root", plugin: str = "simple") -> str:
    (ret,) = call(server, "login", f"<plugin>{plugin}</plugin><credentials>"
                  f"<entry><key>username</key><value>{user}</value></entry>"
                  f"<entry><key>password</key><value>secret</value></entry></credentials>")
    return str(ret.text)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def root(server: Server) -> str:
    return login(server)


@pytest.fixture(scope="module")
def facility(server: Server, root: str) -> int:
    """A facility with an investigation type, dataset type and datafile format."""
    name = unique("fac")
    (ret,) = call(server, "create", f"""<sessionId>{root}</sessionId>
        <bean xsi:type="ns0:facility"><name>{name}</name>
          <investigationTypes><name>exp</name></investigationTypes>
          <datasetTypes><name>raw</name></datasetTypes>
        </bean>""")
    return int(ret.text)


def ids(server: Server, entity: str, where: str = "") -> list[int]:
    table = {"User": "USER_", "Rule": "RULE_"}.get(entity, entity.upper())
    rows = server.sql(f"SELECT ID FROM {table} {where} ORDER BY ID").all()
    return [r[0] for r in rows]


def type_id(server: Server, table: str, facility: int) -> int:
    return int(server.sql(f"SELECT ID FROM {table} WHERE FACILITY_ID = :f",
                          f=facility).scalar_one())


def investigation(server: Server, root: str, facility: int, **extra: str) -> int:
    itype = type_id(server, "INVESTIGATIONTYPE", facility)
    more = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    (ret,) = call(server, "create", f"""<sessionId>{root}</sessionId>
        <bean xsi:type="ns0:investigation"><facility><id>{facility}</id></facility>
        <name>{unique("inv")}</name><title>A title</title><visitId>1</visitId>
        <type><id>{itype}</id></type>{more}</bean>""")
    return int(ret.text)


# -- WSDL and XSD -------------------------------------------------------------------------------


def test_wsdl_and_xsd(server: Server) -> None:
    r = server.http.get(ENDPOINT + "?wsdl")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    wsdl = etree.fromstring(r.content)
    ns = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/",
          "xs": "http://www.w3.org/2001/XMLSchema"}
    assert wsdl.xpath("//s:address/@location", namespaces=ns) == [server.url + ENDPOINT]
    location = wsdl.xpath("//xs:import/@schemaLocation", namespaces=ns)[0]
    assert location == server.url + ENDPOINT + "?xsd=1"
    assert server.http.get(ENDPOINT + "?WSDL").content == r.content
    xsd = etree.fromstring(server.http.get(location.removeprefix(server.url)).content)
    names = xsd.xpath("xs:complexType/@name", namespaces=ns)
    assert {"investigation", "dataCollectionDatafile", "entityBaseBean", "fieldSet",
            "entityInfo", "login"} <= set(names)
    assert server.http.get(ENDPOINT + "?xsd=2").status_code == 404
    page = server.http.get(ENDPOINT)
    assert page.status_code == 200 and "?wsdl" in page.text
    # The post-6.2 address serves the same service.
    assert server.http.get("/icat/ICAT?wsdl").status_code == 200


def test_wsdl_addresses_from_public_url(tmp_path: Any) -> None:
    public = "https://icat.example.org:8181"
    srv = Server(tmp_path, f"sqlite:///{tmp_path / 'c.db'}",
                 env={"CAIRN_SERVER__PUBLIC_URL": public + "/"})
    try:
        wsdl = srv.http.get(ENDPOINT + "?wsdl").text
        assert f'location="{public}{ENDPOINT}"' in wsdl
        assert f'schemaLocation="{public}{ENDPOINT}?xsd=1"' in wsdl
    finally:
        srv.stop()


# -- service information ------------------------------------------------------------------------


def test_versions_and_entity_names(server: Server) -> None:
    assert [e.text for e in call(server, "getApiVersion")] == ["6.2.0"]
    assert [e.text for e in call(server, "getVersion")] == ["6.2.0"]
    names = [e.text for e in call(server, "getEntityNames")]
    assert len(names) == 53 and names[0] == "Affiliation" and names[-1] == "UserGroup"
    assert call(server, "dummy") == []


def test_entity_info(server: Server) -> None:
    (info,) = call(server, "getEntityInfo", "<beanName>Investigation</beanName>")
    assert info.findtext("classComment") == "An investigation or experiment"
    assert [e.text for e in info.findall("constraints/fieldNames")] == \
        ["facility", "name", "visitId"]
    fields = {f.findtext("name"): f for f in info.findall("fields")}
    assert fields["title"].findtext("stringLength") == "255"
    assert fields["title"].findtext("notNullable") == "true"
    assert fields["facility"].findtext("relType") == "ONE"
    assert fields["datasets"].findtext("type") == "Dataset"
    assert fields["createTime"].findtext("type") == "Date"
    assert fields["createTime"].find("stringLength") is None
    (rule,) = call(server, "getEntityInfo", "<beanName>Rule</beanName>")
    assert rule.find("constraints") is None  # an empty one would break python-icat
    for abstract in ("Parameter", "EntityBaseBean"):
        (info,) = call(server, "getEntityInfo", f"<beanName>{abstract}</beanName>")
        assert info.find("classComment") is None
    kind, message, offset = fault_of(server, "getEntityInfo", "<beanName>Schlüssel</beanName>")
    assert (kind, message, offset) == ("BAD_PARAMETER", "Schlüssel is not an ICAT entity", -1)


def test_authenticator_info(server: Server) -> None:
    infos = {i.findtext("mnemonic"): i for i in call(server, "getAuthenticatorInfo")}
    assert set(infos) == {"simple", "db", "anon"}
    simple = infos["simple"]
    assert simple.findtext("friendly") == "Simple" and simple.findtext("admin") == "false"
    keys = [(k.findtext("name"), k.findtext("hide")) for k in simple.findall("keys")]
    assert keys == [("username", "false"), ("password", "true")]
    assert infos["anon"].findall("keys") == []


# -- sessions -----------------------------------------------------------------------------------


def test_session_lifecycle(server: Server) -> None:
    sid = login(server, "jdoe")
    assert [e.text for e in call(server, "getUserName", f"<sessionId>{sid}</sessionId>")] == \
        ["simple/jdoe"]
    (minutes,) = call(server, "getRemainingMinutes", f"<sessionId>{sid}</sessionId>")
    assert 119 < float(minutes.text) <= 120
    assert call(server, "refresh", f"<sessionId>{sid}</sessionId>") == []
    assert call(server, "logout", f"<sessionId>{sid}</sessionId>") == []
    assert fault_of(server, "getUserName", f"<sessionId>{sid}</sessionId>") == \
        ("SESSION", f"Unable to find user by sessionid: {sid}", -1)
    assert fault_of(server, "getRemainingMinutes")[:2] == \
        ("SESSION", "Session Id cannot be null or empty.")
    sid = login(server, "useroffice")
    assert [e.text for e in call(server, "getUserName", f"<sessionId>{sid}</sessionId>")] == \
        ["simple/useroffice"]


def test_login_failures(server: Server) -> None:
    bad = ("<plugin>simple</plugin><credentials><entry><key>username</key><value>root</value>"
           "</entry><entry><key>password</key><value>wrong</value></entry></credentials>")
    assert fault_of(server, "login", bad)[0] == "SESSION"
    kind, message, _ = fault_of(server, "login", "<plugin>nope</plugin><credentials/>")
    assert kind == "SESSION" and "nope" in message
    # Anonymous login needs no credentials at all.
    (sid,) = call(server, "login", "<plugin>anon</plugin><credentials/>")
    assert [e.text for e in call(server, "getUserName", f"<sessionId>{sid.text}</sessionId>")] \
        == ["anon/anon"]


def test_properties_root_only(server: Server, root: str) -> None:
    lines = [e.text for e in call(server, "getProperties", f"<sessionId>{root}</sessionId>")]
    assert "maxEntities 10000" in lines and "lifetimeMinutes 120" in lines
    sid = login(server, "jdoe")
    assert fault_of(server, "getProperties", f"<sessionId>{sid}</sessionId>") == \
        ("INSUFFICIENT_PRIVILEGES", "user must be in rootUserNames", -1)


# -- reading ------------------------------------------------------------------------------------


def test_get_and_search(server: Server, root: str, facility: int) -> None:
    inv = investigation(server, root, facility, startDate="2020-01-02T03:04:05.5+01:00")
    (got,) = call(server, "get", f"<sessionId>{root}</sessionId>"
                  f"<query>Investigation INCLUDE 1</query><primaryKey>{inv}</primaryKey>")
    assert got.get(f"{{{XSI}}}type").rpartition(":")[2] == "investigation"
    assert got.findtext("id") == str(inv)
    # MariaDB keeps whole seconds (icat.server's DATETIME columns).
    assert got.findtext("startDate") in ("2020-01-02T02:04:05.500Z", "2020-01-02T02:04:05Z")
    assert got.findtext("facility/id") == str(facility)
    assert got.find("facility").get(f"{{{XSI}}}type") is None
    assert got.findtext("fileSize") == "0"
    (plain,) = call(server, "get", f"<sessionId>{root}</sessionId>"
                    f"<query>Investigation</query><primaryKey>{inv}</primaryKey>")
    assert plain.find("facility") is None
    assert fault_of(server, "get", f"<sessionId>{root}</sessionId><query>Investigation</query>"
                    "<primaryKey>987654321</primaryKey>") == \
        ("NO_SUCH_OBJECT_FOUND", "Investigation[id:987654321] not found.", -1)
    found = call(server, "search", f"<sessionId>{root}</sessionId><query>Investigation</query>")
    assert str(inv) in [r.findtext("id") for r in found]
    assert all(r.get(f"{{{XSI}}}type").endswith(":investigation") for r in found)
    assert fault_of(server, "search", f"<sessionId>{root}</sessionId><query>Bogus</query>")[::2] \
        == ("BAD_PARAMETER", -1)
    assert fault_of(server, "search", "<sessionId>nope</sessionId><query>Facility</query>")[0] \
        == "SESSION"


# -- writing ------------------------------------------------------------------------------------


def test_create_lenient_input(server: Server, root: str, facility: int) -> None:
    """What suds and the DataGateway generator really send (§0 item 8, datagateway-api §4.3)."""
    dtype = type_id(server, "DATASETTYPE", facility)
    inv = investigation(server, root, facility)
    name = unique("ds")
    body = f"""<x:Envelope xmlns:x="{ENV}"><x:Body>
      <q:create xmlns:q="{TNS}" xmlns:i="{XSI}"><sessionId>{root}</sessionId>
        <bean i:type="q:dataset"><id>777777</id><createId>forged</createId>
          <complete/><description>first</description><description>second</description>
          <startDate>2010-05-06</startDate><endDate>2011-01-02T03:04:05.123456</endDate>
          <investigation><id>{inv}</id><fileCount>5</fileCount></investigation>
          <name>{name}</name><type><id>{dtype}</id><name>ignored</name></type>
          <somethingNew>ignored</somethingNew>
          <datafiles><name>a.dat</name><fileSize>10</fileSize>
            <datafileCreateTime>2012-03-04T05:06:07+02:00</datafileCreateTime></datafiles>
          <datafiles><name>b.dat</name></datafiles>
        </bean></q:create></x:Body></x:Envelope>"""
    r = post(server, body.encode())
    assert r.status_code == 200, r.text
    new_id = int(etree.fromstring(r.content).findtext(f".//{{{TNS}}}createResponse/return"))
    assert new_id != 777777
    (ds,) = call(server, "get", f"<sessionId>{root}</sessionId><query>Dataset INCLUDE 1"
                 f"</query><primaryKey>{new_id}</primaryKey>")
    assert ds.findtext("complete") == "false"
    assert ds.findtext("description") == "second"
    assert ds.findtext("startDate") == "2010-05-06T00:00:00Z"
    assert ds.findtext("endDate") in ("2011-01-02T03:04:05.123Z", "2011-01-02T03:04:05Z")
    assert ds.findtext("createId") == "simple/root"
    # A reference is never updated (not 5): the count is the database's, of the two new files.
    assert ds.findtext("investigation/fileCount") == "2"
    files = server.sql("SELECT NAME, FILESIZE FROM DATAFILE WHERE DATASET_ID = :d ORDER BY NAME",
                       d=new_id).all()
    assert [tuple(f) for f in files] == [("a.dat", 10), ("b.dat", 0)]
    # Unknown enum text is stored as null, as JAXB unmarshals it.
    (sid,) = call(server, "create", f"<sessionId>{root}</sessionId><bean xsi:type="
                  f'"ns0:study"><name>{unique("st")}</name><status>1</status></bean>')
    assert server.sql("SELECT STATUS FROM STUDY WHERE ID = :i", i=int(sid.text)).scalar() \
        is None


def test_create_faults(server: Server, root: str, facility: int) -> None:
    inv = investigation(server, root, facility)
    dtype = type_id(server, "DATASETTYPE", facility)
    ds = (f'<bean xsi:type="ns0:dataset"><investigation><id>{inv}</id></investigation>'
          f"<name>dup</name><type><id>{dtype}</id></type></bean>")
    call(server, "create", f"<sessionId>{root}</sessionId>{ds}")
    kind, message, offset = fault_of(server, "create", f"<sessionId>{root}</sessionId>{ds}")
    assert (kind, offset) == ("OBJECT_ALREADY_EXISTS", -1)
    assert message.startswith("Dataset exists with")
    assert fault_of(server, "create", f"<sessionId>{root}</sessionId>"
                    '<bean xsi:type="ns0:facility"/>') == \
        ("VALIDATION", "Facility: name cannot be null.", -1)
    assert fault_of(server, "create", f"<sessionId>{root}</sessionId><bean><name>x</name>"
                    "</bean>")[0] == "BAD_PARAMETER"
    assert fault_of(server, "create", f"<sessionId>{root}</sessionId>"
                    '<bean xsi:type="ns0:dataset"><investigation><id>987654</id></investigation>'
                    f"<name>x</name><type><id>{dtype}</id></type></bean>")[0] == \
        "NO_SUCH_OBJECT_FOUND"
    jdoe = login(server, "jdoe")
    assert fault_of(server, "create", f"<sessionId>{jdoe}</sessionId>"
                    f'<bean xsi:type="ns0:facility"><name>{unique("f")}</name></bean>')[0] == \
        "INSUFFICIENT_PRIVILEGES"


def test_create_many_and_offsets(server: Server, root: str, facility: int) -> None:
    inv = investigation(server, root, facility)
    dtype = type_id(server, "DATASETTYPE", facility)

    def ds(name: str, inv_id: int = inv) -> str:
        return (f'<beans xsi:type="ns0:dataset"><investigation><id>{inv_id}</id>'
                f"</investigation><name>{name}</name><type><id>{dtype}</id></type></beans>")

    new = call(server, "createMany", f"<sessionId>{root}</sessionId>{ds('m1')}{ds('m2')}"
               f'<beans xsi:type="ns0:keyword"><investigation><id>{inv}</id></investigation>'
               "<name>kw</name></beans>")
    # Ids are numbered per table: the two datasets differ, the keyword may share a number.
    assert len(new) == 3 and len({e.text for e in new[:2]}) == 2
    before = server.snapshot()
    assert fault_of(server, "createMany", f"<sessionId>{root}</sessionId>{ds('m3')}"
                    f"{ds('m4', 987654)}{ds('m5')}")[::2] == ("NO_SUCH_OBJECT_FOUND", 1)
    assert fault_of(server, "createMany", f"<sessionId>{root}</sessionId>"
                    f"{ds('m6')}{ds('m7')}{ds('m6')}")[::2] == ("OBJECT_ALREADY_EXISTS", 2)
    assert server.snapshot() == before  # all or nothing
    assert call(server, "createMany", f"<sessionId>{root}</sessionId>") == []


def test_update_replaces(server: Server, root: str, facility: int) -> None:
    inv = investigation(server, root, facility, summary="a summary", doi="10.1/x")
    itype = type_id(server, "INVESTIGATIONTYPE", facility)
    call(server, "update", f"""<sessionId>{root}</sessionId>
        <bean xsi:type="ns0:investigation"><id>{inv}</id><facility><id>{facility}</id>
        </facility><name>renamed</name><title>New</title><visitId>2</visitId>
        <type><id>{itype}</id></type><createId>forged</createId>
        <keywords><name>ignored</name></keywords></bean>""")
    row = server.sql("SELECT NAME, TITLE, SUMMARY, DOI, FILESIZE, CREATE_ID, MOD_ID "
                     "FROM INVESTIGATION WHERE ID = :i", i=inv).one()
    assert tuple(row) == ("renamed", "New", None, None, 0, "simple/root", "simple/root")
    assert server.sql("SELECT COUNT(*) FROM KEYWORD WHERE INVESTIGATION_ID = :i",
                      i=inv).scalar() == 0
    assert fault_of(server, "update", f"<sessionId>{root}</sessionId>"
                    f'<bean xsi:type="ns0:investigation"><id>{inv}</id><name>x</name>'
                    "<title>t</title><visitId>1</visitId></bean>")[::2] == ("VALIDATION", -1)
    assert fault_of(server, "update", f"<sessionId>{root}</sessionId>"
                    '<bean xsi:type="ns0:investigation"><name>x</name></bean>')[0] == \
        "NO_SUCH_OBJECT_FOUND"
    assert fault_of(server, "update", f"<sessionId>{root}</sessionId>"
                    '<bean xsi:type="ns0:facility"><id>987654</id><name>x</name></bean>')[0] \
        == "NO_SUCH_OBJECT_FOUND"


def test_delete_cascades(server: Server, root: str, facility: int) -> None:
    inv = investigation(server, root, facility)
    call(server, "create", f'<sessionId>{root}</sessionId><bean xsi:type="ns0:keyword">'
         f"<investigation><id>{inv}</id></investigation><name>k</name></bean>")
    call(server, "delete", f'<sessionId>{root}</sessionId><bean xsi:type="ns0:investigation">'
         f"<id>{inv}</id><keywords><name>ignored</name></keywords></bean>")
    assert server.sql("SELECT COUNT(*) FROM KEYWORD WHERE INVESTIGATION_ID = :i",
                      i=inv).scalar() == 0
    assert ids(server, "Investigation", f"WHERE ID = {inv}") == []
    assert fault_of(server, "delete", f'<sessionId>{root}</sessionId><bean xsi:type='
                    f'"ns0:investigation"><id>{inv}</id></bean>')[0] == "NO_SUCH_OBJECT_FOUND"
    assert fault_of(server, "delete", f"<sessionId>{root}</sessionId>"
                    '<bean xsi:type="ns0:investigation"/>')[0] == "NO_SUCH_OBJECT_FOUND"
    a, b = investigation(server, root, facility), investigation(server, root, facility)
    before = server.snapshot()
    beans = "".join(f'<beans xsi:type="ns0:investigation"><id>{i}</id></beans>'
                    for i in (a, 987654, b))
    assert fault_of(server, "deleteMany", f"<sessionId>{root}</sessionId>{beans}")[::2] == \
        ("NO_SUCH_OBJECT_FOUND", 1)
    assert server.snapshot() == before
    beans = "".join(f'<beans xsi:type="ns0:investigation"><id>{i}</id></beans>' for i in (a, b))
    call(server, "deleteMany", f"<sessionId>{root}</sessionId>{beans}")
    assert ids(server, "Investigation", f"WHERE ID IN ({a}, {b})") == []


def test_is_access_allowed(server: Server, root: str, facility: int) -> None:
    inv = investigation(server, root, facility)
    bean = f'<bean xsi:type="ns0:investigation"><id>{inv}</id></bean>'

    def allowed(sid: str, bean: str, access: str) -> bool:
        (ret,) = call(server, "isAccessAllowed", f"<sessionId>{sid}</sessionId>{bean}"
                      f"<accessType>{access}</accessType>")
        return ret.text == "true"

    for access in ("READ", "UPDATE", "DELETE"):
        assert allowed(root, bean, access)
    missing = '<bean xsi:type="ns0:investigation"><id>987654</id></bean>'
    assert not allowed(root, missing, "READ")
    new = f'<bean xsi:type="ns0:facility"><name>{unique("f")}</name></bean>'
    before = server.snapshot()
    assert allowed(root, new, "CREATE")
    assert server.snapshot() == before  # tried, then rolled back
    jdoe = login(server, "jdoe")
    assert not allowed(jdoe, bean, "READ")
    assert not allowed(jdoe, new, "CREATE")
    name = server.sql("SELECT NAME FROM FACILITY WHERE ID = :i", i=facility).scalar()
    dup = f'<bean xsi:type="ns0:facility"><name>{name}</name></bean>'
    assert fault_of(server, "isAccessAllowed", f"<sessionId>{root}</sessionId>{dup}"
                    "<accessType>CREATE</accessType>")[0] == "OBJECT_ALREADY_EXISTS"
    assert fault_of(server, "isAccessAllowed", f"<sessionId>{root}</sessionId>{bean}"
                    "<accessType>EAT</accessType>")[0] == "BAD_PARAMETER"
    assert fault_of(server, "isAccessAllowed", f"<sessionId>bad</sessionId>{bean}"
                    "<accessType>READ</accessType>")[0] == "SESSION"


# -- malformed and hostile requests ------------------------------------------------------------


@pytest.mark.parametrize("body, text", [
    (b"", "Empty request"),
    (b"<<<", "Malformed XML"),
    (b"<a/>", "Not a SOAP 1.1 envelope"),
    (envelope("noSuchOperation"), "Cannot find dispatch method"),
    (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><getEntityInfo>'
     b"<beanName>&x;</beanName></getEntityInfo></e:Body></e:Envelope>", "Document Type"),
])
def test_malformed_requests(server: Server, body: bytes, text: str) -> None:
    kind, message, offset, code = fault(server, body)
    assert (kind, offset, code) == ("BAD_PARAMETER", -1, "S:Client")
    assert text in message
    assert "root:" not in message


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_huge_requests_are_refused(server: Server, root: str) -> None:
    from cairn.web.soap.envelope import MAX_REQUEST_BYTES

    pad = b"<x>" + b"a" * 1_000_000 + b"</x>"
    declared = envelope("getApiVersion", (pad * (MAX_REQUEST_BYTES // len(pad) + 2)).decode())
    kind, message, _, _ = fault(server, declared)
    assert kind == "BAD_PARAMETER" and "too large" in message

    rss = _rss_kb(server.proc.pid) if os.path.exists("/proc") else 0

    def endless() -> Iterator[bytes]:
        # No Content-Length: the server must stop reading at the cap, not buffer 256 MB.
        yield envelope("getApiVersion")[:-40]
        for _ in range(256):
            yield b"<x>" + b"b" * (1024 * 1024) + b"</x>"

    try:
        r = post(server, endless())
        assert r.status_code == 500 and b"too large" in r.content
    except (httpx.NetworkError, httpx.RemoteProtocolError):
        # Also a refusal: the server closed the connection at the cap while the client still
        # sent. (A timeout is not: it would mean the server kept reading.)
        pass
    if rss:
        assert _rss_kb(server.proc.pid) - rss < 200 * 1024
    assert [e.text for e in call(server, "getApiVersion")] == ["6.2.0"]  # still serving


# -- python-icat as client ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Any]:
    icat = pytest.importorskip("icat", reason="python-icat (in the test extra) is not installed")
    c = icat.Client(server.url + ENDPOINT + "?wsdl", cache=None)
    c.autoLogout = False  # logged out below, while the server still runs
    c.login("simple", {"username": "root", "password": "secret"})
    try:
        yield c
    finally:
        c.logout()


def test_python_icat_client(client: Any, server: Server) -> None:
    assert str(client.apiversion) == "6.2.0"
    assert client.getUserName() == "simple/root"
    assert client.typemap["investigation"].Constraint == ("facility", "name", "visitId")
    assert client.typemap["rule"].Constraint == ("id",)
    assert client._has_wsdl_type("fieldSet")
    info = client.getEntityInfo("Dataset")
    assert [c.fieldNames for c in info.constraints] == [["investigation", "name"]]
    assert {a.mnemonic for a in client.getAuthenticatorInfo()} == {"simple", "db", "anon"}


def test_python_icat_create_update_delete(client: Any, server: Server) -> None:
    import icat

    fac = client.new("Facility", name=unique("pyfac"), fullName="Python facility")
    fac.create()
    itype = client.new("InvestigationType", name="exp", facility=fac)
    itype.create()
    inv = client.new("Investigation", name=unique("pyinv"), visitId="1", title="Py",
                     facility=fac, type=itype)
    inv.keywords.append(client.new("Keyword", name="kw"))
    inv.create()
    got = client.get("Investigation INCLUDE 1", inv.id)
    assert got.title == "Py" and got.facility.id == fac.id and got.type.id == itype.id
    assert got.createTime.tzinfo is not None
    got.title = "Updated"
    got.update()
    assert client.get("Investigation", inv.id).title == "Updated"
    assert client.isAccessAllowed(got, "UPDATE") is True
    dstype = client.new("DatasetType", name="raw", facility=fac)
    dstype.create()
    datasets = [client.new("Dataset", name=f"ds{i}", investigation=got, type=dstype,
                           complete=bool(i % 2)) for i in range(3)]
    new_ids = client.createMany(datasets)
    assert len(new_ids) == 3
    found = client.search("Dataset INCLUDE 1")
    mine = [d for d in found if d.investigation.id == inv.id]
    assert sorted(d.name for d in mine) == ["ds0", "ds1", "ds2"]
    assert {d.complete for d in mine} == {False, True}
    bad = [client.new("Dataset", name="ok", investigation=got, type=dstype),
           client.new("Dataset", name="bad", investigation=client.new("Investigation", id=-11),
                      type=dstype)]
    with pytest.raises(icat.ICATError) as e:
        client.createMany(bad)
    assert e.value.offset == 1
    with pytest.raises(icat.ICATObjectExistsError) as e2:
        client.create(client.new("Dataset", name="ds0", investigation=got, type=dstype))
    assert e2.value.offset is None
    with pytest.raises(icat.ICATParameterError):
        client.search("Bogus")
    client.deleteMany(mine)
    client.delete(got)
    with pytest.raises(icat.ICATNoObjectError):
        client.get("Investigation", inv.id)
    with pytest.raises(icat.ICATSessionError):
        saved = client.sessionId
        client.sessionId = "-=- INVALID ID -=-"
        try:
            client.getRemainingMinutes()
        finally:
            client.sessionId = saved


# -- result shapes of the query language --------------------------------------------------------


def test_search_result_shapes(server: Server, root: str) -> None:
    base = unique("shape")
    a, b = base + "-a", base + "-b"  # in ORDER BY f.name order
    call(server, "createMany", f"<sessionId>{root}</sessionId>"
         f'<beans xsi:type="ns0:facility"><name>{a}</name><daysUntilRelease>3</daysUntilRelease>'
         f'</beans><beans xsi:type="ns0:facility"><name>{b}</name><fullName>Two</fullName>'
         "</beans>")
    where = f"WHERE f.name IN ('{a}', '{b}') ORDER BY f.name"

    def search(select: str) -> list[etree._Element]:
        return call(server, "search", f"<sessionId>{root}</sessionId>"
                    f"<query>SELECT {select} FROM Facility f {where}</query>")

    def typed(el: etree._Element) -> tuple[str | None, str | None]:
        if el.get(f"{{{XSI}}}nil") == "true":
            return None, None
        return el.get(f"{{{XSI}}}type", "").rpartition(":")[2], el.text

    assert [typed(r) for r in search("f.name")] == [("string", a), ("string", b)]
    assert [typed(r) for r in search("f.fullName")] == [(None, None), ("string", "Two")]
    assert [typed(r) for r in search("COUNT(f)")] == [("long", "2")]
    rows = search("f.name, f.daysUntilRelease, f.fullName")
    assert [r.get(f"{{{XSI}}}type").rpartition(":")[2] for r in rows] == ["fieldSet"] * 2
    assert [[typed(f) for f in r] for r in rows] == [
        [("string", a), ("long", "3"), (None, None)],
        [("string", b), (None, None), ("string", "Two")]]
    (entity,) = search("f").__getitem__(slice(0, 1))
    assert entity.get(f"{{{XSI}}}type").endswith(":facility")


def test_python_icat_queries(client: Any, server: Server, root: str) -> None:
    from icat.query import Query

    name = unique("pyq")
    fac = client.new("Facility", name=name, daysUntilRelease=7)
    fac.create()
    rows = client.search(Query(client, "Facility", conditions={"name": f"= '{name}'"},
                               attributes=["name", "daysUntilRelease", "fullName"]))
    assert rows == [(name, 7, None)]
    (count,) = client.search(Query(client, "Facility", conditions={"name": f"= '{name}'"},
                                   aggregate="COUNT"))
    assert count == 1
    (found,) = client.search(Query(client, "Facility", conditions={"name": f"= '{name}'"}))
    assert found.id == fac.id and found.daysUntilRelease == 7
    client.delete(found)
