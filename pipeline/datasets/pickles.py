"""Reading the Python 2 pickles that 3DPW and UP-3D ship (numpy arrays, latin1 byte strings).

They go through the restricted unpickler of :mod:`pipeline.safe_pickle`: numpy arrays, plain containers and
(for SMPLify-era fits) chumpy arrays, mapped onto :class:`~pipeline.safe_pickle.ChumpyStub` and turned into
numpy arrays by :func:`~pipeline.safe_pickle.plain`. A file naming any other global is refused with
:class:`~pipeline.safe_pickle.UnsafePickleError` before anything in it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.safe_pickle import ChumpyStub, load_pickle, plain


def load_py2_pickle(path: str | Path) -> Any:
    """Load a Python 2 (or 3) pickle with latin1 decoding of byte strings and chumpy arrays as numpy."""
    return plain(load_pickle(path, chumpy=ChumpyStub))
