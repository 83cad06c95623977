"""JSON responses encoded by orjson: a page of entities encodes about ten times faster than
with the standard library (measured on the portal benchmark's 94 KB My Data page)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response


def _other(value: Any) -> Any:
    if isinstance(value, Decimal):  # an aggregate from some drivers
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(content: Any) -> bytes:
    """JSON bytes; NaN and infinities become null, :class:`orjson.Fragment` goes in as is."""
    return orjson.dumps(content, default=_other)


class JSONResponse(_StarletteJSON):
    """Starlette's JSON response with orjson's encoder."""

    def render(self, content: Any) -> bytes:
        return encode(content)


def json_bytes(body: bytes, keep: object = None) -> Response:
    """A response of JSON already encoded (off the event loop, say).

    ``keep`` is what the body was encoded from, held until the response has been sent: a page
    of thousands of objects takes about half a millisecond to free, which the client then
    does not wait for.
    """
    response = Response(body, media_type="application/json")
    response.keep = keep  # type: ignore[attr-defined]
    return response
