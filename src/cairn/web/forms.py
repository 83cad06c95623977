"""Reading a request's form within ``[server] max_request_bytes``.

Starlette refuses any form field over 1 MB unless told otherwise, so a nested write of
20,000 datafiles (1.3 MB encoded) failed. Here the bound is the configured one, for the
whole form as for each field, and exceeding it is a BAD_PARAMETER naming the setting.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from cairn.errors import IcatError, bad_parameter


def too_large(limit: int) -> IcatError:
    return bad_parameter(f"The request is larger than {limit:,} bytes, the most this server "
                         "reads into memory ([server] max_request_bytes)")


async def read_form(request: Request, limit: int) -> FormData:
    """The request's form (url-encoded or multipart): no field, and no declared body, may be
    larger than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)  # before reading a byte of it
    try:
        return await request.form(max_part_size=limit)
    except HTTPException as e:
        if "maximum size" in str(e.detail):
            raise too_large(limit) from None
        raise
