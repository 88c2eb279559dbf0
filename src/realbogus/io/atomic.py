"""Atomic writes: a file or folder appears whole or not at all, with the permissions the umask gives.

Every writer in realbogus goes through here: a crash leaves the earlier file (if any) untouched and
no partial file behind, and results are readable as any file the user creates (``tempfile`` makes
0600 files and 0700 folders; we set 0666 / 0777 less the process umask, as ``open`` would).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_directory", "atomic_path", "file_mode", "write_bytes", "write_text"]


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (other threads may be
    creating files), else by setting it and straight back."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0)
    os.umask(umask)
    return umask


def file_mode(*, directory: bool = False) -> int:
    """The permissions a new file (0666) or folder (0777) gets under the process umask."""
    return (0o777 if directory else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash leaves the earlier `path` (if any) untouched and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; if the block succeeds it replaces `path`.

    A crash leaves the earlier `path` (if any) untouched and no temporary directory behind. The
    result gets 0777 less the umask (mkdtemp makes 0700), its files 0666 less the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        _set_modes(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _set_modes(folder: Path) -> None:
    """Give `folder`, and everything written in it, the modes the umask gives new files and
    folders: some writers (safetensors, tempfile) create 0600 files whatever the umask."""
    files, folders = file_mode(), file_mode(directory=True)
    for root, dirs, names in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), folders)
        for name in names:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                os.chmod(full, files)
    os.chmod(folder, folders)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns `path`."""
    return write_bytes(path, text.encode())
