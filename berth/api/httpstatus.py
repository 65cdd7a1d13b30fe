"""Engine errors as HTTP statuses: the one place that decides, as moby's
httpstatus.FromError does.

Lower layers raise berth.errors categories with user-facing, one-line
messages; the API answers with the matching status and Docker's error body
``{"message": ...}``, which clients print as "Error response from daemon: ...".
"""

from __future__ import annotations

import json
from http import HTTPStatus

from berth import errors

# Most specific first: DataCorrupt is an InvalidArgument.
_STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.DataCorrupt, 400),
    (errors.InvalidArgument, 400),
    (errors.Unauthorized, 401),
    (errors.Unavailable, 503),
    # A command that is missing or not executable is the request's fault;
    # moby turns the runtime's "executable file not found" and "permission
    # denied" into invalid-parameter errors (400) the same way.
    (errors.CommandNotFound, 400),
    (errors.NotExecutable, 400),
)


def status_for(error: BaseException) -> int:
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def error_for(status: int, message: str) -> errors.BerthError:
    """A daemon's error response as the category it came from (the client's side)."""
    if status == 400:
        # The docker CLI reads a failed start's message the same way to exit 127 or 126.
        if "executable file not found" in message or "no such file or directory" in message:
            return errors.CommandNotFound(message)
        if "permission denied" in message or "is a directory" in message:
            return errors.NotExecutable(message)
        return errors.InvalidArgument(message)
    kind = {404: errors.NotFound, 409: errors.Conflict, 401: errors.Unauthorized,
            503: errors.Unavailable}.get(status, errors.BerthError)
    return kind(message)


def message_for(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode() + b"\n"


def reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
