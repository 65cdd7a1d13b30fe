"""Inter-process locks on files under the state root.

Ingestion writes blobs before the transaction that references them, so
garbage collection must not sweep while an ingestion is in flight: ingesters
hold the GC lock shared, a sweep holds it exclusive.
"""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, exclusive: bool = True):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
