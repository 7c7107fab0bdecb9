"""Unpickling files from outside without running their code: an allow-list of the globals data needs.

A pickle is a program: every class or function it names (a *global*) is imported and may be called with
arguments of the file's choosing, so ``pickle.load`` on a downloaded file can run anything. The datasets
and body models of the field still ship pickles (3DPW's sequence files, UP-3D's fits, the official SMPL
``.pkl`` files, object members of HumanData ``.npz`` files), so they are read with :class:`SafeUnpickler`,
which resolves only these globals and refuses every other one with :class:`UnsafePickleError`:

- numpy arrays, dtypes and scalars (``_reconstruct``, ``scalar``, ``_frombuffer`` under both the
  ``numpy.core`` spelling of numpy 1 / Python 2 files and numpy 2's ``numpy._core``, ``numpy.ndarray``,
  ``numpy.dtype``);
- scipy sparse ``csc`` / ``csr`` / ``coo`` matrices (under ``scipy.sparse`` and its internal module paths
  old and new, e.g. SMPL's ``scipy.sparse.csc.csc_matrix``);
- plain containers and numbers (``set``, ``frozenset``, ``slice``, ``complex``, ``list``, ``dict``, ...,
  ``collections.OrderedDict`` / ``defaultdict``), ``copyreg._reconstructor`` of protocol 0/1 files (it can
  only instantiate allowed classes) and ``_codecs.encode`` for latin-1 only (how protocol < 3 stores bytes);
- chumpy classes, mapped onto a stand-in, only when the caller passes one (SMPL files hold ``chumpy.ch.Ch``).

Python 2 pickles load with ``encoding='latin1'`` (byte strings and numpy buffers are 8-bit strings there).
Sparse matrices are index-checked before they are returned (:func:`check_sparse`); any damage comes out as
:class:`FileReadError` naming the file.
"""

from __future__ import annotations

import codecs
import collections
import copyreg
import io
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse

_NP_CORE = getattr(np, "_core", None) or np.core  # numpy 2 moved numpy.core to numpy._core


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list; the message names the file and the global."""

    def __init__(self, source: str, module: str, name: str) -> None:
        self.source, self.module, self.name = source, module, name
        super().__init__(
            f"{source}: refused to unpickle {module}.{name}: only numpy arrays, scipy sparse matrices and "
            "plain containers are loaded from pickles (a pickle naming anything else could run code)"
        )

    def __reduce__(self):  # survives being sent between worker processes
        return type(self), (self.source, self.module, self.name)


class FileReadError(ValueError):
    """A file (or one member of an archive) cannot be read: truncated, corrupt, not the format it claims."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles use it for ``bytes``; other codecs are refused."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError as err:
        raise pickle.UnpicklingError(f"refused _codecs.encode with unknown codec {encoding!r}") from err
    if name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused _codecs.encode with codec {encoding!r} (only latin-1)")
    return codecs.encode(text, "latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _NP_CORE.multiarray._reconstruct
        table[(f"{core}.multiarray", "scalar")] = _NP_CORE.multiarray.scalar
        table[(f"{core}.numeric", "_frombuffer")] = _NP_CORE.numeric._frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    for kind in ("csc", "csr", "coo"):
        cls = getattr(scipy.sparse, f"{kind}_matrix")
        for module in ("scipy.sparse", f"scipy.sparse.{kind}", f"scipy.sparse._{kind}"):
            table[(module, f"{kind}_matrix")] = cls
    plain = (set, frozenset, slice, complex, list, dict, tuple, int, float, bool, str, bytes, bytearray)
    for cls in (*plain, object):
        table[("builtins", cls.__name__)] = cls
    table[("collections", "OrderedDict")] = collections.OrderedDict
    table[("collections", "defaultdict")] = collections.defaultdict
    table[("copyreg", "_reconstructor")] = copyreg._reconstructor
    table[("_codecs", "encode")] = _latin1_encode
    return table


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed()
# Python 2 module names, as pickle's own fix_imports would translate them.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


# What a damaged pickle can raise: bad opcodes, cut data, absurd lengths, wrong arguments to an allowed
# constructor.
_DAMAGE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,  # absurdly deep nesting
)


class ChumpyStub:
    """Stand-in for any chumpy class (``chumpy.ch.Ch``, ``chumpy.reordering.Select``, ...).

    Keeps the pickled state; :meth:`value` gives the numeric array (a ``Ch`` keeps it under ``x``,
    expressions under ``a`` / ``r``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def value(self) -> np.ndarray:
        state = self.state if isinstance(self.state, dict) else {"x": self.state}
        for key in ("x", "a", "r"):
            item = state.get(key)
            if isinstance(item, ChumpyStub):
                return item.value()
            if item is not None:
                return np.asarray(item)
        raise TypeError(f"chumpy object without a numeric value (state keys: {sorted(state)})")


def check_sparse(value: Any) -> None:
    """Raise ValueError for any scipy sparse matrix inside ``value`` whose index arrays are inconsistent.

    Unpickling restores a sparse matrix's arrays as stored, unchecked, and scipy's C routines (``toarray``,
    products) index memory with them: a damaged or crafted file could crash the process or worse. Called
    on everything :class:`SafeUnpickler` returns.
    """
    if scipy.sparse.issparse(value):
        if value.format in ("csc", "csr"):
            value.check_format(full_check=True)
        elif value.format == "coo":
            rows, cols = value.shape
            r, c, d = np.asarray(value.row), np.asarray(value.col), np.asarray(value.data)
            if not (r.ndim == c.ndim == d.ndim == 1 and len(r) == len(c) == len(d)):
                raise ValueError("coo matrix: row, col and data differ in length")
            if len(r) and (r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):
                raise ValueError(f"coo matrix: an index lies outside its shape {value.shape}")
        return
    if isinstance(value, dict):
        value = value.values()
    elif isinstance(value, ChumpyStub):
        value = [value.state]
    if isinstance(value, list | tuple | set | frozenset | type({}.values())):
        for item in value:
            check_sparse(item)
    elif isinstance(value, np.ndarray) and value.dtype.hasobject:
        for item in value.reshape(-1):
            check_sparse(item)


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` resolving only :data:`ALLOWED_GLOBALS` (plus ``chumpy.*`` when given a stand-in).

    ``source`` names the file in error messages. ``chumpy``: the class to build for every ``chumpy.*``
    global (e.g. :class:`ChumpyStub`); None refuses chumpy like any other global.
    """

    def __init__(
        self, file: BinaryIO, *, source: str, chumpy: type | None = None, encoding: str = "latin1"
    ) -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self.source = source
        self.chumpy = chumpy

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if self.chumpy is not None and (module == "chumpy" or module.startswith("chumpy.")):
            return self.chumpy
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(self.source, module, name)
        return found

    def load(self) -> Any:
        """Unpickle; damage (truncation, flipped bytes) comes out as :class:`FileReadError` naming the
        source, a refused global as :class:`UnsafePickleError`."""
        try:
            value = super().load()
            check_sparse(value)
        except UnsafePickleError:
            raise
        except _DAMAGE_ERRORS as err:
            raise FileReadError(f"{self.source}: damaged pickle ({type(err).__name__}: {err})") from err
        return value

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"{self.source}: persistent ids are not supported ({pid!r})")


def load_pickle(path: str | Path, *, chumpy: type | None = None) -> Any:
    """Unpickle the file at ``path`` through :class:`SafeUnpickler` (latin-1 for Python 2 files).

    Raises :class:`UnsafePickleError` for a refused global, :class:`FileReadError` for a damaged pickle,
    ``OSError`` for a file that cannot be opened.
    """
    with open(path, "rb") as handle:
        return SafeUnpickler(handle, source=str(path), chumpy=chumpy).load()


def loads(data: bytes, *, source: str, chumpy: type | None = None) -> Any:
    """:func:`load_pickle` for bytes already in memory; ``source`` names them in errors."""
    return SafeUnpickler(io.BytesIO(data), source=source, chumpy=chumpy).load()


# What reading a damaged zip / npy member can raise (beyond the FileReadError we raise ourselves).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    MemoryError,
    NotImplementedError,  # zipfile, for a flipped compression-method or flag field
)


def _read_member(archive: zipfile.ZipFile, member: str, source: str, chumpy: type | None) -> np.ndarray:
    """One ``.npy`` member; object arrays go through :class:`SafeUnpickler` instead of numpy's pickle."""
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        shape, dtype = None, None
        if read_header is not None:
            shape, _, dtype = read_header(handle)
        if dtype is None or not dtype.hasobject:
            handle.seek(0)
            array = np.lib.format.read_array(handle, allow_pickle=False)
        else:
            array = SafeUnpickler(handle, source=source, chumpy=chumpy).load()
        handle.read()  # to the end of the member, so that zipfile checks its CRC
    if shape is None:
        return array
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        got = array.shape if isinstance(array, np.ndarray) else type(array).__name__
        raise FileReadError(f"{source}: object member holds {got}, its header says shape {tuple(shape)}")
    return array


def load_npz(path: str | Path, *, chumpy: type | None = None) -> dict[str, np.ndarray]:
    """All members of an ``.npz`` file as arrays, every byte read and CRC-checked now (not lazily).

    Object-dtype members (numpy would need ``allow_pickle=True``) are unpickled by :class:`SafeUnpickler`;
    a 0-d object member holding a dict (HumanData's ``smpl``, ``meta``) comes back as that 0-d array.
    Raises :class:`UnsafePickleError` naming ``path[member]`` and the global, or :class:`FileReadError`
    naming the file (and member) for anything unreadable: missing, truncated, bad CRC, not a zip.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                key = member[: -len(".npy")] if member.endswith(".npy") else member
                source = f"{path}[{key}]"
                try:
                    out[key] = _read_member(archive, member, source, chumpy)
                except (UnsafePickleError, FileReadError):
                    raise
                except _ZIP_ERRORS as err:
                    raise FileReadError(f"{source}: unreadable member ({type(err).__name__}: {err})") from err
    except (UnsafePickleError, FileReadError):
        raise
    except _ZIP_ERRORS as err:
        raise FileReadError(f"{path}: not a readable npz file ({type(err).__name__}: {err})") from err
    return out


def plain(value: Any) -> Any:
    """``value`` with :class:`ChumpyStub` objects replaced by numpy arrays, recursing into containers."""
    if isinstance(value, ChumpyStub):
        return value.value()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value
