"""The one error type of Cairn, carrying icat.server's exception types."""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    BAD_PARAMETER = "BAD_PARAMETER"
    INSUFFICIENT_PRIVILEGES = "INSUFFICIENT_PRIVILEGES"
    INTERNAL = "INTERNAL"
    NO_SUCH_OBJECT_FOUND = "NO_SUCH_OBJECT_FOUND"
    OBJECT_ALREADY_EXISTS = "OBJECT_ALREADY_EXISTS"
    SESSION = "SESSION"
    VALIDATION = "VALIDATION"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"


#: HTTP status icat.server's REST interface answers for each type.
HTTP_STATUS = {
    ErrorType.BAD_PARAMETER: 400,
    ErrorType.INSUFFICIENT_PRIVILEGES: 403,
    ErrorType.SESSION: 403,
    ErrorType.NO_SUCH_OBJECT_FOUND: 404,
    ErrorType.OBJECT_ALREADY_EXISTS: 412,
    ErrorType.VALIDATION: 412,
    ErrorType.INTERNAL: 500,
    ErrorType.NOT_IMPLEMENTED: 501,
}


class IcatError(Exception):
    """An error a client should see: type, human-readable message, optional offset.

    ``offset`` is the index of the offending item in multi-object requests (or the position
    in a query string); -1 means not applicable.
    """

    def __init__(self, type: ErrorType, message: str, offset: int = -1) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.offset = offset

    def at(self, offset: int) -> IcatError:
        """The same error, located at an item of a multi-object request (if not yet located)."""
        if self.offset < 0:
            self.offset = offset
        return self

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.type]

    def __repr__(self) -> str:
        return f"IcatError({self.type.value}, {self.message!r}, {self.offset})"


def bad_parameter(message: str, offset: int = -1) -> IcatError:
    return IcatError(ErrorType.BAD_PARAMETER, message, offset)


def validation(message: str, offset: int = -1) -> IcatError:
    return IcatError(ErrorType.VALIDATION, message, offset)


def session_error(message: str) -> IcatError:
    return IcatError(ErrorType.SESSION, message)


def no_such_object(message: str, offset: int = -1) -> IcatError:
    return IcatError(ErrorType.NO_SUCH_OBJECT_FOUND, message, offset)


def insufficient_privileges(message: str, offset: int = -1) -> IcatError:
    return IcatError(ErrorType.INSUFFICIENT_PRIVILEGES, message, offset)


def internal(message: str, offset: int = -1) -> IcatError:
    return IcatError(ErrorType.INTERNAL, message, offset)
