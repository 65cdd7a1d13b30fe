"""The few categories every berth failure falls into.

Lower layers raise these; the CLI maps them to exit codes and the API to
HTTP statuses, each in one place.  The message is what the user sees, so it
is one line and uses Docker's wording where Docker has one.
"""


class BerthError(Exception):
    """An engine failure with a user-facing message."""


class NotFound(BerthError):
    """The named object (image, container, volume, network, blob) does not exist."""


class Conflict(BerthError):
    """The operation clashes with the current state (name in use, image in use)."""


class InvalidArgument(BerthError):
    """The request itself is wrong: bad reference, flag value, malformed input."""


class Unauthorized(BerthError):
    """Credentials are missing or were refused."""


class Unavailable(BerthError):
    """A peer (registry, runtime, kernel feature) cannot be reached or used."""


class DataCorrupt(InvalidArgument):
    """Content failed verification: digest mismatch, truncated or hostile archive."""


class NotExecutable(BerthError):
    """The container's command exists but cannot be run (exit 126)."""


class CommandNotFound(BerthError):
    """The container's command does not exist (exit 127)."""
