"""The private protocol between a container's supervisor and its clients.

Clients (attach, start -a, run, wait; the CLI or the daemon) connect to the
supervisor's unix socket.  Both directions carry frames with Docker's
stdcopy header (kind byte, three zero bytes, big-endian length), so output
frames are exactly what the Engine API sends for a non-tty attach.

Client to supervisor: HELLO first (JSON: which streams, terminal size),
then STDIN data, STDIN_EOF, RESIZE ("rows cols").
Supervisor to client: STARTED (pid) or FAILED (JSON kind, message) once the
process was started, STDOUT/STDERR data, and EXIT (code) before closing.
"""

from __future__ import annotations

from berth.container.stdio import Demuxer, frame

STDIN, STDOUT, STDERR = 0, 1, 2
RESIZE, STDIN_EOF, HELLO = 4, 5, 6
STARTED, FAILED, EXIT = 8, 9, 10


def hello(*, stdin: bool, stdout: bool, stderr: bool, rows: int = 0, cols: int = 0,
          logs: bool = False) -> bytes:
    import json  # here, not at the top: the supervisor's idle loop imports this module

    return frame(HELLO, json.dumps({"stdin": stdin, "stdout": stdout, "stderr": stderr,
                                    "rows": rows, "cols": cols, "logs": logs}).encode())


def resize(rows: int, cols: int) -> bytes:
    return frame(RESIZE, f"{rows} {cols}".encode())


def failed(kind: str, message: str) -> bytes:
    import json

    return frame(FAILED, json.dumps({"kind": kind, "message": message}).encode())


__all__ = ["Demuxer", "frame", "hello", "resize", "failed", "STDIN", "STDOUT", "STDERR", "RESIZE",
           "STDIN_EOF", "HELLO", "STARTED", "FAILED", "EXIT"]
