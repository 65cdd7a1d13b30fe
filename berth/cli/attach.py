"""The terminal side of attach: raw mode, window size, detach keys, stdio pumping."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import sys
import termios
import threading
import tty as ttymod

from berth.container import protocol as proto
from berth.container.stdio import DetachScanner
from berth.errors import BerthError, CommandNotFound, Conflict, NotExecutable, NotFound

_FAILURES = {"CommandNotFound": CommandNotFound, "NotExecutable": NotExecutable, "NotFound": NotFound,
             "Conflict": Conflict}


def terminal_size(fd: int = 1) -> tuple[int, int]:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols
    except OSError:
        return 0, 0


DETACHED = "detached"


def pump(conn, *, tty: bool, stdin: bool, detach_keys: bytes) -> int | str | None:
    """Run an attach session to its end: the exit code, DETACHED after the
    detach keys, or None when the supervisor went away without a word."""
    import json

    restore = None
    if tty and stdin and os.isatty(0):
        restore = termios.tcgetattr(0)
        ttymod.setraw(0, termios.TCSANOW)  # keep keys typed before attaching
    old_winch = None
    if tty and os.isatty(1):
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: conn.resize(*terminal_size()))
    detached = threading.Event()

    def read_stdin():
        scanner = DetachScanner(detach_keys) if detach_keys else None
        try:
            while True:
                data = os.read(0, 4096)
                if not data:
                    conn.close_stdin()
                    return
                if scanner is not None:
                    data, done = scanner.feed(data)
                    if data:
                        conn.send_stdin(data)
                    if done:
                        detached.set()
                        conn.sock.shutdown(2)
                        return
                else:
                    conn.send_stdin(data)
        except OSError:
            return

    if stdin:
        threading.Thread(target=read_stdin, daemon=True).start()
    try:
        for kind, payload in conn.frames():
            if kind == proto.STDOUT:
                _write(1, payload)
            elif kind == proto.STDERR:
                _write(2, payload)
            elif kind == proto.FAILED:
                info = json.loads(payload)
                raise _FAILURES.get(info["kind"], BerthError)(info["message"])
            elif kind == proto.EXIT:
                return int(payload)
        return DETACHED if detached.is_set() else None
    finally:
        if restore is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, restore)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        conn.close()


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[n:]


def flush() -> None:
    sys.stdout.flush()
    sys.stderr.flush()


def pump_pty(master: int, *, stdin: bool, detach_keys: bytes) -> None:
    """Connect the local terminal to a pty master until the far side closes."""
    import selectors

    restore = None
    if stdin and os.isatty(0):
        restore = termios.tcgetattr(0)
        ttymod.setraw(0, termios.TCSANOW)  # keep keys typed before attaching
    rows, cols = terminal_size()
    if rows and cols:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    old_winch = None
    if os.isatty(1):
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: fcntl.ioctl(
            master, termios.TIOCSWINSZ, struct.pack("HHHH", *terminal_size(), 0, 0)))
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ, "pty")
    if stdin:
        sel.register(0, selectors.EVENT_READ, "stdin")
    scanner = DetachScanner(detach_keys) if stdin and detach_keys else None
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "pty":
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    _write(1, data)
                else:
                    data = os.read(0, 4096)
                    if not data:
                        sel.unregister(0)
                        continue
                    if scanner is not None:
                        data, done = scanner.feed(data)
                        if data:
                            _write(master, data)
                        if done:
                            return
                    else:
                        _write(master, data)
    finally:
        sel.close()
        os.close(master)
        if restore is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, restore)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
