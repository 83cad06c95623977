"""The OpenAPI description of Cairn's HTTP interfaces, and ``docs/rest.md`` made from it.

Each interface is declared once, tersely, in ``web/api/<interface>.yaml`` (what a call takes,
what it answers, who may call it); this module turns the declarations into an OpenAPI 3.1
document (served at ``GET /openapi.json``) and into the Markdown reference. A test holds the
declarations and the application's routes to each other, so neither can drift::

    python -m cairn.web.openapi            # the OpenAPI document, as JSON
    python -m cairn.web.openapi --markdown # docs/rest.md

Declaration keys, per call: ``call`` ("METHOD /path/{param}"), ``summary``, ``who``;
``path``, ``query``, ``form``, ``multipart`` and ``json`` (fields of a JSON body), each
mapping a parameter's name to its description (a trailing ``!`` marks a required one);
``body`` (a raw request body), ``answer``, ``status`` (default 200, or 204 when nothing is
answered), ``type`` (the answer's media type, default JSON), ``notes``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from importlib.resources import files
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.catalogue.service import API_VERSION

#: The interfaces, in the order the reference shows them.
INTERFACES = ("icat", "search", "soap", "ids", "topcat", "publishing", "pages", "operations")

#: Each interface's error body.
ERRORS: dict[str, dict[str, Any]] = {
    "IcatError": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "description": "ICAT's error type, e.g. "
                                "SESSION, BAD_PARAMETER, INSUFFICIENT_PRIVILEGES"},
                       "message": {"type": "string"},
                       "offset": {"type": "integer", "description": "where a query went wrong"}}},
    "IdsError": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "description": "ids.server's exception "
                                "name, e.g. BadRequestException, DataNotOnlineException"},
                       "message": {"type": "string"}}},
    "TopcatError": {
        "type": "object", "required": ["status", "code", "message"],
        "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                       "message": {"type": "string"}}},
}

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # query, form, multipart, json, path
    description: str
    required: bool


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # as OpenAPI writes it: {doi}, never {doi:path}
    summary: str
    who: str
    params: tuple[Param, ...]
    body: str | None
    answer: str
    status: int
    media_type: str
    notes: str


@dataclass(frozen=True)
class Interface:
    key: str
    title: str
    description: str
    error: str | None
    calls: tuple[Call, ...] = field(default_factory=tuple)


def _params(decl: dict[str, Any], where: str) -> list[Param]:
    out = []
    for name, text in (decl.get(where) or {}).items():
        required = name.endswith("!")
        out.append(Param(name.rstrip("!"), where, str(text or ""), required or where == "path"))
    return out


def _call(decl: dict[str, Any]) -> Call:
    method, path = str(decl["call"]).split(" ", 1)
    path = _PARAM.sub(r"{\1}", path)
    params = [p for w in ("path", "query", "form", "multipart", "json") for p in _params(decl, w)]
    named = {p.name for p in params if p.where == "path"}
    params += [Param(n, "path", "", True) for n in _PARAM.findall(path) if n not in named]
    answer = str(decl.get("answer", "")).strip()
    return Call(method.upper(), path, str(decl["summary"]).strip(), str(decl.get("who", "")),
                tuple(params), decl.get("body"), answer,
                int(decl.get("status", 200 if answer else 204)),
                str(decl.get("type", "application/json")), str(decl.get("notes", "")).strip())


@cache
def interfaces() -> tuple[Interface, ...]:
    out = []
    for key in INTERFACES:
        text = files("cairn.web").joinpath(f"api/{key}.yaml").read_text(encoding="utf-8")
        decl = yaml.safe_load(text)
        out.append(Interface(key, str(decl["title"]), str(decl["description"]).strip(),
                             decl.get("error"), tuple(_call(c) for c in decl["calls"])))
    return tuple(out)


# -- OpenAPI ------------------------------------------------------------------------------------

def _operation(iface: Interface, call: Call) -> dict[str, Any]:
    op: dict[str, Any] = {"tags": [iface.title], "summary": call.summary,
                          "operationId": f"{call.method.lower()}"
                          + re.sub(r"\W+", "_", call.path).rstrip("_")}
    description = "\n\n".join(x for x in (
        f"**Who:** {call.who}" if call.who else "", call.notes) if x)
    if description:
        op["description"] = description
    plain = [p for p in call.params if p.where in ("query", "path")]
    if plain:
        op["parameters"] = [{"name": p.name, "in": p.where, "required": p.required,
                             "description": p.description, "schema": {"type": "string"}}
                            for p in plain]
    for where, media in (("form", "application/x-www-form-urlencoded"),
                         ("multipart", "multipart/form-data"), ("json", "application/json")):
        fields = [p for p in call.params if p.where == where]
        if fields:
            schema: dict[str, Any] = {
                "type": "object",
                "properties": {p.name: {"type": "string", "description": p.description}
                               for p in fields}}
            required = [p.name for p in fields if p.required]
            if required:
                schema["required"] = required
            op["requestBody"] = {"required": bool(required),
                                 "content": {media: {"schema": schema}}}
    if call.body is not None:
        op["requestBody"] = {"required": True, "description": call.body,
                             "content": {"application/octet-stream": {
                                 "schema": {"type": "string", "format": "binary"}}}}
    ok: dict[str, Any] = {"description": call.answer or "No Content"}
    if call.status != 204:
        ok["content"] = {call.media_type: {"schema": {}}}
    op["responses"] = {str(call.status): ok}
    if iface.error:
        op["responses"]["default"] = {
            "description": "An error, with the status of its type",
            "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{iface.error}"}}}}
    return op


def _version() -> str:
    try:
        return package_version("cairn")
    except PackageNotFoundError:  # run from a source tree
        return "0+unknown"


def document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every interface."""
    paths: dict[str, dict[str, Any]] = {}
    for iface in interfaces():
        for call in iface.calls:
            paths.setdefault(call.path, {})[call.method.lower()] = _operation(iface, call)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Cairn", "version": _version(),
                 "description": "The ICAT catalogue, data service, download manager and DOI "
                                "publishing of one Cairn server. Its interfaces keep the "
                                f"protocols of icat.server {API_VERSION}, ids.server and "
                                "TopCat's download API."},
        "tags": [{"name": i.title, "description": i.description} for i in interfaces()],
        "paths": paths,
        "components": {"schemas": ERRORS},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


async def serve(request: Request) -> Response:
    settings = request.app.state.catalogue.settings
    body = json.dumps(document(settings.public_url), indent=1)
    return Response(body, media_type="application/json")


def routes() -> list[BaseRoute]:
    return [Route("/openapi.json", serve, methods=["GET"])]


# -- Markdown -------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _param_cell(call: Call) -> str:
    parts = []
    for where in ("path", "query", "form", "multipart", "json"):
        ps = [p for p in call.params if p.where == where]
        if not ps:
            continue
        names = ", ".join(f"`{p.name}`" + ("" if p.required or where == "path" else "?")
                          + (f" ({_cell(p.description)})" if p.description else "")
                          for p in ps)
        parts.append(f"{'JSON body' if where == 'json' else where}: {names}")
    if call.body is not None:
        parts.append(f"body: {_cell(call.body)}")
    return "; ".join(parts)


def markdown() -> str:
    lines = ["# REST and HTTP reference", "",
             "<!-- Made by `python -m cairn.web.openapi --markdown` from "
             "src/cairn/web/api/*.yaml; edit those, not this file. -->", "",
             "Every HTTP call Cairn answers, by interface. A running server describes the "
             "same calls as OpenAPI 3.1 at `GET /openapi.json` (load it into any OpenAPI "
             "viewer or client generator). Parameters marked `?` are optional.", ""]
    lines += [f"- [{i.title}](#{re.sub(r'[^a-z0-9 -]', '', i.title.lower()).replace(' ', '-')})"
              for i in interfaces()]
    for iface in interfaces():
        lines += ["", f"## {iface.title}", "", iface.description, "",
                  "| call | parameters | answer | who |", "|---|---|---|---|"]
        for call in iface.calls:
            answer = call.answer or "nothing"
            if answer[:1] in "{[\"" and "`" not in answer:
                answer = f"`{answer}`"
            if call.status not in (200,):
                answer = f"{call.status}: {answer}"
            if call.media_type != "application/json" and call.answer:
                answer += f" (`{call.media_type}`)"
            summary = _cell(call.summary) + (f" {_cell(call.notes)}" if call.notes else "")
            lines.append(f"| `{call.method} {call.path}`<br>{summary} | {_param_cell(call)} "
                         f"| {_cell(answer)} | {_cell(call.who)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[1:] == ["--markdown"]:
        sys.stdout.write(markdown())
    elif not argv[1:]:
        sys.stdout.write(json.dumps(document(), indent=1) + "\n")
    else:
        print("usage: python -m cairn.web.openapi [--markdown]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
