"""How the CLI writes: Docker's JSON, tables, templates and timestamps."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable, Iterable

from berth.units import created_ago, created_at
from berth.errors import NotFound


def lines(items: Iterable[str]) -> None:
    for item in items:
        print(item)


def formatted(fmt: str, rows: list[dict], headers: dict[str, str]) -> None:
    from berth.cli.table import format_rows  # the template engine loads only when output needs it
    text = format_rows(fmt, rows, headers)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def go_json(obj, indent: int | None = None) -> str:
    """JSON as Go's encoding/json writes it (docker inspect's output)."""
    from berth.cli import gotemplate
    return gotemplate.marshal_json(obj, indent=" " * indent if indent else None)


def inspect_each(names: list[str], lookup: Callable[[str], dict], fmt: str | None, kind: str) -> int:
    """Docker's inspect: print what was found, one error line per missing name."""
    found, failed = [], False
    for name in names:
        try:
            found.append(lookup(name))
        except NotFound as e:
            failed = True
            msg = str(e) if kind != "object" else f"No such object: {name}"
            print(f"Error: {msg}", file=sys.stderr)
    if fmt:
        from berth.cli import gotemplate
        template = gotemplate.compile(fmt)
        for obj in found:
            print(template.execute(obj))
    else:
        print(go_json(found, indent=4))
    return 1 if failed else 0


def template(text: str):
    from berth.cli import gotemplate
    return gotemplate.compile(text)


def render(text: str, data) -> str:
    return template(text).execute(data)


def ago(epoch: float) -> str:
    return created_ago(epoch) if epoch else "N/A"


def local_time(epoch: float) -> str:
    """Docker's CreatedAt: `2024-01-02 03:04:05 +0000 UTC`."""
    return created_at(int(epoch))


def ellipsis(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def confirm(question: str) -> bool:
    sys.stdout.write(question + " [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def archive_to(path: str | None, produce: Callable) -> None:
    """save/export: to a file written whole, or to stdout unless it is a terminal."""
    if path:
        atomic_write(path, produce)
        return
    if sys.stdout.isatty():
        from berth.errors import InvalidArgument
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sys.stdout.flush()
    produce(sys.stdout.buffer)
    sys.stdout.buffer.flush()


def atomic_write(path: str, produce: Callable) -> None:
    """Write a file whole or not at all: a failed save leaves no partial archive."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".berth-")
    try:
        with os.fdopen(fd, "wb") as f:
            produce(f)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


