"""One shard of the render stage: manifest rows -> person crops + rendered IUV -> encoded samples -> tar.

Shard membership is a pure function of the manifest sorted by ``sample_id`` and ``shard_size`` (shard ``i``
holds sorted rows ``[i * shard_size, (i + 1) * shard_size)``, :func:`plan_shards`), and :func:`build_shard`
makes shard ``i`` from those rows alone, so its bytes do not depend on the number of workers or on the
order tasks finish in. The tar is written under a temporary name and renamed when complete. Which shards to
build, reuse or delete is pipeline/render_job.py's job; the renderer interface is pipeline/renderers.py.
docs/design.md, "The render stage", has the overview.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline import crop as cropping
from pipeline import dp_points
from pipeline import shards as fmt
from pipeline.body.spec import BodySpec
from pipeline.conventions import RENDER_CROP_MARGIN
from pipeline.datasets.images import read_image
from pipeline.files import atomic_output, file_digest
from pipeline.render.camera_fit import fit_problem
from pipeline.renderers import DEFAULT_RENDERER, Renderer, load_renderer

NPY_FIELDS = ("pose", "betas", "kp2d", "kp3d")  # stored as .npy members, not in the json member


@dataclass(frozen=True)
class ShardParams:
    """Everything that determines the bytes of a split's shards (recorded in ``index.json``)."""

    dataset: str  # plain word: the shard names' prefix DATASET-SPLIT-
    split: str  # plain word
    shard_size: int = 1000  # rows of the sorted manifest per shard (the last one may hold fewer)
    crop_size: int = 256  # stored crop side S, pixels
    margin: float = RENDER_CROP_MARGIN  # stored crop side / person box side, >= 1
    renderer: str = DEFAULT_RENDERER  # spec "module:name" (pipeline/renderers.py)
    body: BodySpec = BodySpec()  # body files for a renderer that takes them

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.crop_size < 8 or not self.margin >= 1.0:
            raise ValueError(f"bad shard parameters: {self}")
        for name in (self.dataset, self.split):
            if not name or "/" in name or "." in name:
                raise ValueError(f"dataset/split names must be plain words, got {name!r}")


# The manifest, read once per process: a Dask worker builds several shards of one split, each from a slice
# of the same sorted table. Keyed by the file's mtime too, so a manifest rewritten in place is read again.
@functools.lru_cache(maxsize=2)
def _sorted_manifest(path: str, mtime_ns: int):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if "sample_id" not in table.column_names:
        raise ValueError(f"{path}: manifest has no sample_id column")
    table = table.sort_by("sample_id")
    ids = table.column("sample_id").to_pylist()
    dupes = sorted({a for a, b in zip(ids, ids[1:]) if a == b})
    if dupes:
        raise ValueError(f"{path}: duplicate sample_id values, e.g. {dupes[:5]}")
    return table


def load_manifest(path: str | os.PathLike):
    """The manifest at ``path`` as a pyarrow Table sorted by ``sample_id`` (cached per process)."""
    path = os.fspath(path)
    return _sorted_manifest(path, os.stat(path).st_mtime_ns)


def plan_shards(n_rows: int, shard_size: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of each shard over the sorted manifest."""
    return [(s, min(s + shard_size, n_rows)) for s in range(0, n_rows, shard_size)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def _field(row: dict, name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = row.get(name)
    if value is None:
        raise ValueError(f"field {name} is missing")
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != math.prod(shape):
        raise ValueError(f"field {name} has {arr.size} values, expected {math.prod(shape)} {shape}")
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"field {name} has non-finite values")
    return arr


class _ImageCache:
    """Reads images relative to ``root``, keeping the last one (people of one image are often adjacent)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path: str | None = None
        self.image: np.ndarray | None = None

    def get(self, rel: str) -> np.ndarray:
        if rel != self.path:
            try:
                image = read_image(self.root / rel)  # decoded whole, or the reason it is not
            except ValueError as err:
                raise ValueError(f"image {rel} is unreadable ({err})") from None
            self.path, self.image = rel, image
        return self.image


def prepare_rows(
    rows: Sequence[dict], image_root: Path, params: ShardParams
) -> tuple[list[tuple[dict, np.ndarray, np.ndarray]], list[dict[str, str]]]:
    """Crop every row's person; returns ([(row, crop_rgb, transform)], rejects [{key, reason}])."""
    images = _ImageCache(image_root)
    kept, rejects = [], []
    for row in rows:
        key = str(row["sample_id"])
        try:
            if "." in key or "/" in key:
                raise ValueError("sample_id contains '.' or '/'")
            center = _field(row, "center", (2,))
            matrix = cropping.crop_transform(center, float(row["scale"]), params.crop_size, params.margin)
            kp2d = _field(row, "kp2d", (24, 3))
            if row.get("has_smpl"):
                _field(row, "pose", (72,))
                _field(row, "betas", (10,))
                if problem := fit_problem(kp2d[:, :2], kp2d[:, 2]):
                    raise ValueError(f"no IUV render: {problem}")
            if row.get("has_kp3d"):
                _field(row, "kp3d", (24, 4))
            dp_points.check_row(row)  # DensePose points / masks, when the row has them
            bgr = images.get(str(row["image_path"]))
            crop_rgb = cropping.warp(bgr, matrix, params.crop_size)[..., ::-1]
        except (ValueError, TypeError, KeyError) as e:
            rejects.append({"key": key, "reason": str(e)})
            continue
        kept.append((row, crop_rgb, matrix))
    return kept, rejects


def encode_sample(row: dict, crop_rgb: np.ndarray, matrix: np.ndarray, iuv: np.ndarray | None,
                  params: ShardParams) -> dict[str, bytes]:  # fmt: skip
    """The shard members (see :mod:`pipeline.shards`) of one prepared row."""
    has_smpl = bool(row.get("has_smpl"))
    has_kp3d = bool(row.get("has_kp3d"))
    members = {
        "jpg": fmt.encode_jpg(crop_rgb),
        "kp2d.npy": fmt.encode_npy(cropping.crop_keypoints(matrix, _field(row, "kp2d", (24, 3)))),
    }
    if has_smpl:
        smpl = np.concatenate([_field(row, "pose", (72,)), _field(row, "betas", (10,))])
        members["smpl.npy"] = fmt.encode_npy(smpl)
    if has_kp3d:
        members["kp3d.npy"] = fmt.encode_npy(_field(row, "kp3d", (24, 4)))
    if iuv is not None:
        if iuv.shape != (params.crop_size, params.crop_size, 3) or iuv.dtype != np.uint8:
            raise ValueError(f"renderer returned {iuv.shape} {iuv.dtype} for {row['sample_id']}")
        members["iuv.png"] = fmt.encode_png(iuv)
    members.update(dp_points.shard_members(row, matrix, params.crop_size))  # DensePose labels, where given
    meta = {k: v for k, v in row.items() if k not in NPY_FIELDS}
    meta.update(
        has_smpl=has_smpl,
        has_kp3d=has_kp3d,
        has_iuv=iuv is not None,
        crop={"size": params.crop_size, "margin": params.margin, "matrix": matrix.tolist()},
    )
    members["json"] = fmt.encode_json(_jsonable(meta))
    return members


def _render_rows(render_fn: Renderer, batch: list, crop_size: int, rejects: list[dict[str, str]]) -> list:
    """[(prepared row, IUV map)] of one renderer batch. When the batch fails, its rows are rendered one by
    one and each row that fails alone is a reject naming it, so one bad row never stops the split."""

    def render(part: list) -> list:
        iuvs = render_fn([r for r, _, _ in part], [m for _, _, m in part], crop_size)
        if len(iuvs) != len(part):
            raise RuntimeError(f"renderer returned {len(iuvs)} maps for {len(part)} rows")
        return list(zip(part, iuvs))

    try:
        return render(batch)
    except Exception:  # noqa: BLE001 - find the row(s) at fault below, one by one
        out = []
    for item in batch:
        try:
            out.extend(render([item]))
        except Exception as e:  # noqa: BLE001 - a row's failure is that row's reject, whatever it is
            rejects.append({"key": str(item[0]["sample_id"]), "reason": f"IUV rendering failed: {e!r}"})
    return out


def build_shard(
    manifest_path: str,
    image_root: str,
    out_dir: str,
    params: ShardParams,
    shard_index: int,
    device: str = "auto",
    batch_size: int = 32,
) -> fmt.ShardEntry:
    """Build shard ``shard_index`` (a Dask task): crop, render in batches, write tmp tar, rename.

    Returns its index entry (sample count, byte size, md5, first/last key, rejects).
    """
    cv2.setNumThreads(1)
    table = load_manifest(manifest_path)
    start, stop = plan_shards(table.num_rows, params.shard_size)[shard_index]
    rows = table.slice(start, stop - start).to_pylist()
    prepared, rejects = prepare_rows(rows, Path(image_root), params)
    render_fn = load_renderer(params.renderer, device, params.body)
    samples = []
    for b in range(0, len(prepared), batch_size):
        batch = prepared[b : b + batch_size]
        for (row, crop_rgb, matrix), iuv in _render_rows(render_fn, batch, params.crop_size, rejects):
            try:
                samples.append((str(row["sample_id"]), encode_sample(row, crop_rgb, matrix, iuv, params)))
            except (ValueError, TypeError, KeyError) as e:
                rejects.append({"key": str(row["sample_id"]), "reason": f"cannot be encoded: {e}"})
    name = fmt.shard_name(params.dataset, params.split, shard_index)
    final = Path(out_dir) / name
    with atomic_output(final) as tmp:
        fmt.write_tar(tmp, samples)
        entry = fmt.ShardEntry(
            name=name,
            samples=len(samples),
            bytes=tmp.stat().st_size,
            md5=file_digest(tmp, "md5"),
            keys=(samples[0][0], samples[-1][0]) if samples else None,
            rejects=rejects,
        )
    return entry
