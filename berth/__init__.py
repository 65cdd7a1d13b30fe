"""berth: a Docker-compatible container engine in Python."""

__version__ = "0.1.0"
# The Docker Engine API version berth speaks; reported by `version` and the daemon.
API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
