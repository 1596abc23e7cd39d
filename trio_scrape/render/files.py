"""Files a rendered page leaves behind (screenshots, PDFs): written whole or not at all.

Each file is written under a temporary name in its own directory (``.NAME.PID.part``) and
renamed over ``NAME`` when complete, so a reader never sees half a file and the same page
written twice (a retry, a page crawled again after a resumed ``--state``) leaves one file.
A process killed mid-write leaves its ``.part`` file: :func:`remove_orphans` removes those of
processes no longer running (the pipeline calls it on its directory as it starts).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

import trio

__all__ = ["file_name", "open_directory", "remove_orphans", "write_whole"]

_PART = re.compile(r"\..+\.(\d+)\.part")


def file_name(url: str, suffix: str) -> str:
    """The file name for ``url``'s page: the first 32 hex digits of its SHA-256, and
    ``suffix`` (``.png``, ``.pdf``)."""
    return hashlib.sha256(url.encode()).hexdigest()[:32] + suffix


def open_directory(directory: str | os.PathLike[str], option: str) -> str:
    """Make ``directory`` if missing and remove the orphans in it (:func:`remove_orphans`);
    returns its path.

    Raises:
        ConfigError: (for ``option``) it cannot be made.
    """
    from ..errors import ConfigError

    path = os.fspath(directory)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ConfigError(option, f"cannot create {path!r}: {exc.strerror or exc}") from None
    remove_orphans(path)
    return path


def _write(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(part, "wb") as file:
            file.write(data)
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


async def write_whole(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (in a thread);
    returns the path.

    Raises:
        OSError: the directory is not writable (or the disk is full).
    """
    target = Path(path)
    await trio.to_thread.run_sync(_write, target, data)
    return target


def remove_orphans(directory: str | os.PathLike[str]) -> int:
    """Remove the ``.part`` files that processes no longer running left in ``directory``;
    returns how many."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        match = _PART.fullmatch(name)
        if match is None or _running(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
