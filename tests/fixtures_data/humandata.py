"""HumanData .npz files written the way mmhuman3d's ``HumanData.dump`` writes them.

``np.savez_compressed`` of a dict holding the three bookkeeping attributes (``__key_strict__``,
``__data_len__``, ``__keypoints_compressed__``) and the data keys: lists of str become str arrays, the
``smpl`` and ``meta`` dicts 0-d object arrays (pickled inside the npz), strings 0-d str arrays. With
``compressed=True`` the keypoint arrays keep only the joints whose mask is 1, as ``compress_keypoints_by_mask``
leaves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def dump_humandata(path: Path, data: dict[str, Any], compressed: bool = False) -> Path:
    """Write ``data`` (HumanData keys) to ``path``; keypoints given full-size (N, K, C) with their masks."""
    data = dict(data)
    if compressed:
        for key in ("keypoints2d", "keypoints3d"):
            if key in data:
                data[key] = data[key][:, np.asarray(data[f"{key}_mask"]) == 1]
    n = len(data["image_path"])
    dump = {"__key_strict__": False, "__data_len__": n, "__keypoints_compressed__": compressed, **data}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **dump)
    return path


def indexed_keypoints(n: int, k: int, dim: int) -> np.ndarray:
    """(n, k, dim) keypoints whose x is the joint's own index in the file, y = 100 * row + index
    (so where a value lands tells which source joint it came from), confidence 1."""
    kp = np.zeros((n, k, dim))
    kp[..., 0] = np.arange(k)[None, :]
    kp[..., 1] = 100.0 * np.arange(n)[:, None] + np.arange(k)[None, :]
    if dim == 4:
        kp[..., 2] = -np.arange(k)[None, :] / 100.0
    kp[..., -1] = 1.0
    return kp
