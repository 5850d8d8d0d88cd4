"""Small helpers shared by data, training and scripts."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterator, List, Union

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "print_and_save", "remove_stale_parts"]

PART_SUFFIX = ".part"
# a temporary file's name says who writes it: .NAME.HOST.PID.RANDOM.part
_PART = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[^.]+\.part$")
# a temporary file of another machine (shared file system) or without a writer in its name counts as
# abandoned when nothing has written to it for this long
FOREIGN_PART_AGE_S = 24 * 3600.0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host"


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one."""
    with atomic_open(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_open(path: Union[str, os.PathLike]) -> Iterator[BinaryIO]:
    """A binary file to write that replaces ``path`` only when the block ends without an exception.

    The bytes go to a temporary file in the same folder, are flushed to disk, and
    replace ``path`` with ``os.replace`` (atomic on POSIX and Windows). A process
    killed while writing leaves the temporary ``.NAME.HOST.PID.*.part`` file behind;
    :func:`remove_stale_parts` removes such leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_host()}.{os.getpid()}.",
                               suffix=PART_SUFFIX)
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


def remove_stale_parts(folder: Union[str, os.PathLike], recursive: bool = True) -> List[Path]:
    """Delete the temporary files that killed writes of :func:`atomic_open` left under ``folder``.

    A ``.part`` file is stale when the process named in it is no longer running on
    this machine; one written by another machine, or by an older version without its
    writer in the name, when it has not been written to for :data:`FOREIGN_PART_AGE_S`.
    A write still in progress is never touched.

    Returns:
        the paths removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    host, now = _host(), time.time()
    for path in (folder.rglob if recursive else folder.glob)(f".*{PART_SUFFIX}"):
        m = _PART.match(path.name)
        try:
            if m and m["host"] == host:
                stale = int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"]))
            else:
                stale = now - path.stat().st_mtime > FOREIGN_PART_AGE_S
            if stale:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer finished (renamed it) meanwhile
            continue
    return removed
