"""The data service's errors, as ids.server's exception names and HTTP statuses.

The data service raises :class:`~cairn.errors.IcatError` like the rest of Cairn; the ICAT
types map onto ids.server's exceptions (:func:`ids_error`). Two answers have no ICAT type:
data not online (503, ``DataNotOnlineException``: archived data, restore queued, or a lock
conflict) and an expired preparedId (410 with ``NotFoundException``, so python-icat still
raises IDSNotFoundError while download managers such as TopCAT can tell "gone for good" from
ids.server's "404, try again later"). They are :class:`IdsError`.
"""

from __future__ import annotations

from cairn.errors import ErrorType, IcatError

#: ICAT error type -> (HTTP status, ids.server exception name).
_BY_TYPE = {
    ErrorType.BAD_PARAMETER: (400, "BadRequestException"),
    ErrorType.VALIDATION: (400, "BadRequestException"),
    # ids.server answers 500 for a duplicate Datafile name on put; it is the client's error.
    ErrorType.OBJECT_ALREADY_EXISTS: (400, "BadRequestException"),
    ErrorType.INSUFFICIENT_PRIVILEGES: (403, "InsufficientPrivilegesException"),
    ErrorType.SESSION: (403, "InsufficientPrivilegesException"),
    ErrorType.NO_SUCH_OBJECT_FOUND: (404, "NotFoundException"),
    ErrorType.INTERNAL: (500, "InternalException"),
    ErrorType.NOT_IMPLEMENTED: (501, "NotImplementedException"),
}


class IdsError(IcatError):
    """An error with its own ids.server exception name and HTTP status."""

    def __init__(self, code: str, status: int, message: str,
                 type: ErrorType = ErrorType.INTERNAL) -> None:
        super().__init__(type, message)
        self.code = code
        self.status = status

    @property
    def http_status(self) -> int:
        return self.status


def data_not_online(message: str = "Data is busy") -> IdsError:
    """503 ``DataNotOnlineException``: not on main storage (a restore has been queued), or
    locked by an archive/restore/delete in progress."""
    return IdsError("DataNotOnlineException", 503, message)


def gone(message: str) -> IdsError:
    """410 with ``NotFoundException``: an expired preparedId."""
    return IdsError("NotFoundException", 410, message, ErrorType.NO_SUCH_OBJECT_FOUND)


def not_implemented(message: str) -> IcatError:
    return IcatError(ErrorType.NOT_IMPLEMENTED, message)


def ids_error(e: IcatError) -> tuple[int, str]:
    """(HTTP status, ids.server exception name) of an error."""
    if isinstance(e, IdsError):
        return e.status, e.code
    return _BY_TYPE.get(e.type, (500, "InternalException"))
