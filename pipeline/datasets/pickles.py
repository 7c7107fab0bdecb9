"""Reading the Python 2 pickles that 3DPW and UP-3D ship (numpy arrays, latin1 byte strings).

Some SMPLify-era pickles hold chumpy arrays; chumpy does not install here, so its classes are mapped to a
stub that keeps the pickled state, and :func:`plain` turns such stubs into numpy arrays (a chumpy array's
value lives in its ``x`` state entry). Only open pickles you trust: unpickling can run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np


class ChumpyStub:
    """Placeholder for any chumpy class; keeps the pickled state dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"x": state}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return ChumpyStub
        return super().find_class(module, name)


def plain(value: Any) -> Any:
    """``value`` with chumpy stubs replaced by numpy arrays (recursing into dicts and lists)."""
    if isinstance(value, ChumpyStub):
        return np.asarray(value.state.get("x"))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value


def load_py2_pickle(path: str | Path) -> Any:
    """Load a Python 2 (or 3) pickle with latin1 decoding of byte strings and chumpy arrays as numpy."""
    with open(path, "rb") as f:
        return plain(_Unpickler(f, encoding="latin1").load())
