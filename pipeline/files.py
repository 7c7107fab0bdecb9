"""File writes that never leave a half-written file, and file digests: the project's one implementation.

A write goes to a fresh temporary sibling ``.NAME.<random>.tmp`` (created exclusively, so two writers never
share one), is flushed to disk, and is renamed over the target with ``os.replace``; on any error the
temporary file is removed, so the target is always either the old file or the complete new one. The
temporary file gets the permissions a plain ``open(path, "w")`` would (0666 minus the umask: 0644 under
umask 022), not mkstemp's 0600, so outputs are readable like any other file of the project.
:func:`stale_temp_files` finds what a killed writer left behind (the ``.*.tmp`` siblings).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"
CHUNK = 1 << 20  # bytes read at a time by file_digest


def temp_sibling(path: str | os.PathLike) -> Path:
    """Creates (exclusively, mode 0666 minus the umask) and returns an empty ``.NAME.<random>.tmp`` next to
    ``path``; the parent folder is created when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a temporary file for {path.name}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a fresh temporary path next to ``path`` for the caller (or a library) to write; when the block
    ends without an error the file is synced and renamed onto ``path``, otherwise it is removed."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` atomically (temporary sibling + os.replace); returns the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """The temporary files of :func:`atomic_output` (``.NAME.*.tmp``) in ``folder``."""
    return sorted(p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file())


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of the file at ``path`` with hashlib's ``algo`` ("sha256", "md5", ...), read in 1 MiB
    chunks."""
    digest = hashlib.new(algo)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
