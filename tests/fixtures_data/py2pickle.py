"""Write pickles the way Python 2 did, so tests read the same bytes as 3DPW's and UP-3D's real files.

Python 2 ``str`` (and numpy's raw array buffers) are pickled as 8-bit STRING opcodes, which Python 3 can
only load with ``encoding='latin1'``; numpy classes are referenced under ``numpy.core.multiarray``. A small
subclass of the pure-Python pickler emits exactly that at protocol 2.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any


class Py2Pickler(pickle._Pickler):  # noqa: SLF001 (the pure-Python pickler is the documented extension point)
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, data: bytes) -> None:
        n = len(data)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + data)

    def save_bytes(self, obj: bytes) -> None:
        self._save_py2_str(obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self._save_py2_str(obj.encode("latin1"))
        self.memoize(obj)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "")
        if module.startswith("numpy._core"):
            # Python 2 era numpy lived in numpy.core; write the module/name pair by hand
            qual = name or obj.__qualname__
            self.write(pickle.GLOBAL + module.replace("numpy._core", "numpy.core").encode() + b"\n")
            self.write(qual.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def dump_py2(obj: Any, path: Path) -> Path:
    """Pickle ``obj`` to ``path`` at protocol 2 with Python 2 string opcodes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)
    return path
