"""Small helpers shared by data, training and scripts."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Union

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "print_and_save"]


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one."""
    with atomic_open(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_open(path: Union[str, os.PathLike]) -> Iterator[BinaryIO]:
    """A binary file to write that replaces ``path`` only when the block ends without an exception.

    The bytes go to a temporary file in the same folder, are flushed to disk, and
    replace ``path`` with ``os.replace`` (atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Union[str, os.PathLike], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def print_and_save(text: str, out: Union[str, os.PathLike, None] = None) -> None:
    """Print ``text`` (a report, a markdown table) and, when ``out`` is given, also write it there atomically."""
    print(text, end="")
    if out:
        atomic_write_text(out, text)
