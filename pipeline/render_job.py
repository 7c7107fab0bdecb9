"""The render_iuv orchestration: Parquet manifest -> person crops + rendered IUV -> reproducible shards.

Shard membership is a pure function of the manifest sorted by ``sample_id`` and ``shard_size`` (shard ``i``
holds sorted rows ``[i * shard_size, (i + 1) * shard_size)``), and each shard is built by one task from those
rows alone, so the output bytes do not depend on the number of workers or on the order tasks finish in.
Every shard is written under a temporary name and renamed when complete; ``index.json`` is rewritten
atomically after each shard, so a killed run leaves only whole shards, and a rerun skips the shards whose
index entry still verifies (size + md5) and redoes the rest.

The IUV renderer is injected: ``render_fn(rows, crop_transforms, crop_size) -> list[(S, S, 3) uint8 | None]``
gets a batch of manifest rows (dicts), their (2, 3) image->crop transforms and the crop side ``S``, and
returns one IUV map per row (``None`` for rows without an SMPL fit). ``renderer`` names it as
``"module:function"`` so Dask workers import it themselves; a function that takes a ``device``
keyword gets ``--device``, one that takes ``body`` gets the split's :class:`BodySpec` (the body-model,
dense-parts and keypoint-regressor files, whose content hashes index.json records).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
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

RenderFn = Callable[[Sequence[dict], Sequence[np.ndarray], int], list]

DEFAULT_RENDERER = "pipeline.render.manifest_iuv:render_manifest_iuv"
TEST_RENDERER = "pipeline.render_job:keypoint_disk_renderer"
NPY_FIELDS = ("pose", "betas", "kp2d", "kp3d")  # stored as .npy members, not in the json member


@dataclass(frozen=True)
class ShardParams:
    """Everything that determines the bytes of a split's shards (recorded in ``index.json``)."""

    dataset: str
    split: str
    shard_size: int = 1000
    crop_size: int = 256
    margin: float = RENDER_CROP_MARGIN
    renderer: str = DEFAULT_RENDERER
    body: BodySpec = BodySpec()

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.crop_size < 8 or not self.margin >= 1.0:
            raise ValueError(f"bad shard parameters: {self}")
        for name in (self.dataset, self.split):
            if not name or "/" in name or "." in name:
                raise ValueError(f"dataset/split names must be plain words, got {name!r}")


# ---------------------------------------------------------------------------------------------------------
# renderers


def keypoint_disk_renderer(
    rows: Sequence[dict], crop_transforms: Sequence[np.ndarray], crop_size: int
) -> list[np.ndarray | None]:
    """Stand-in renderer for tests and benchmarks: each visible kp2d joint ``j`` drawn as a disk.

    Disk radius ``crop_size / 24`` pixels (at least 2), I = ``j + 1``, U and V = the disk's pixel offsets
    mapped to 0..255. Rows without SMPL get ``None`` like the real renderer. Deterministic.
    """
    radius = max(2, crop_size // 24)
    out: list[np.ndarray | None] = []
    for row, m in zip(rows, crop_transforms, strict=True):
        if not row["has_smpl"]:
            out.append(None)
            continue
        iuv = np.zeros((crop_size, crop_size, 3), np.uint8)
        kp = cropping.crop_keypoints(m, np.asarray(row["kp2d"], np.float64).reshape(24, 3))
        for j, (x, y, vis) in enumerate(kp):
            if vis > 0 and -radius <= x < crop_size + radius and -radius <= y < crop_size + radius:
                colour = (j + 1, 64 + 4 * j, 255 - 4 * j)
                cv2.circle(iuv, (int(round(x)), int(round(y))), radius, colour, thickness=-1)
        out.append(iuv)
    return out


def resolve_renderer(spec: str | RenderFn, device: str = "auto", body: BodySpec | None = None) -> RenderFn:
    """A render function from ``"module:function"`` (or a callable); binds ``device`` and ``body`` where the
    function takes them."""
    if callable(spec):
        fn = spec
    else:
        module_name, _, attr = spec.partition(":")
        if not attr:
            raise ValueError(f"renderer must be 'module:function', got {spec!r}")
        fn = getattr(importlib.import_module(module_name), attr)
    try:
        accepted = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        accepted = set()
    bound = {"device": device, "body": body}
    bound = {k: v for k, v in bound.items() if k in accepted and v is not None}
    return functools.partial(fn, **bound) if bound else fn


# ---------------------------------------------------------------------------------------------------------
# manifest


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


# ---------------------------------------------------------------------------------------------------------
# one shard


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


def _render_rows(render_fn: RenderFn, batch: list, crop_size: int, rejects: list[dict[str, str]]) -> list:
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
    render_fn = resolve_renderer(params.renderer, device, params.body)
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


# ---------------------------------------------------------------------------------------------------------
# the whole split


def _index_params(params: ShardParams, manifest_path: str) -> dict[str, Any]:
    """What index.json records as the shards' making: every parameter, the manifest's md5, the per-sample
    checksum scheme and the body files with their sha256 (for the default renderer), so a change to any of
    them rebuilds the shards."""
    recorded = asdict(params)
    recorded["body"] = params.body.identity() if params.renderer == DEFAULT_RENDERER else None
    return dict(recorded, manifest_md5=file_digest(manifest_path, "md5"), jpeg_quality=fmt.JPEG_QUALITY,
                sample_checksum=fmt.SAMPLE_CHECKSUM)  # fmt: skip


def _reusable_entries(out_dir: Path, index_params: dict[str, Any]) -> dict[str, fmt.ShardEntry]:
    try:
        doc = fmt.read_index(out_dir)
    except (FileNotFoundError, ValueError):
        return {}
    if doc.get("params") != index_params:
        return {}
    entries = (fmt.ShardEntry.from_json(s) for s in doc["shards"])
    return {e.name: e for e in entries if not fmt.verify_entry(out_dir, e, decode=False)}


def _clean_stale(out_dir: Path, params: ShardParams, planned: set[str]) -> None:
    fmt.remove_stale_temp_files(out_dir)  # .index.json.*.tmp of a killed run
    prefix = f"{params.dataset}-{params.split}-"
    for path in out_dir.iterdir():
        stale_tmp = path.name.startswith(f".{prefix}") and ".tmp-" in path.name
        extra = path.name.startswith(prefix) and path.name.endswith(".tar") and path.name not in planned
        if stale_tmp or extra:
            path.unlink()


def render_dataset(
    manifest_path: str | os.PathLike,
    image_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: ShardParams,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Render one split's manifest into shards + ``index.json`` in ``out_dir``; returns a summary dict.

    ``workers`` >= 1 starts a dask.distributed LocalCluster of that many single-threaded processes;
    ``scheduler`` (an address) uses an existing cluster instead; ``workers=0`` builds in this process
    (debugging, profiling). Shards whose index entry still verifies are kept, the rest are (re)built.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    manifest_path, image_root = os.fspath(manifest_path), os.fspath(image_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_rows = load_manifest(manifest_path).num_rows
    plan = plan_shards(n_rows, params.shard_size)
    names = [fmt.shard_name(params.dataset, params.split, i) for i in range(len(plan))]
    index_params = _index_params(params, manifest_path)
    done = {n: e for n, e in _reusable_entries(out, index_params).items() if n in set(names)}
    _clean_stale(out, params, set(names))
    todo = [i for i, n in enumerate(names) if n not in done]
    fmt.write_index(out, index_params, done.values())
    bar = tqdm(total=n_rows, unit="sample", disable=not progress, desc=f"{params.dataset}/{params.split}")
    kept_rows = sum(b - a for n, (a, b) in zip(names, plan) if n in done)
    bar.update(kept_rows)
    skipped, t_work = len(done), time.perf_counter()
    task_args = (manifest_path, image_root, os.fspath(out), params)

    def finished(i: int, entry: fmt.ShardEntry) -> None:
        done[entry.name] = entry
        fmt.write_index(out, index_params, done.values())
        bar.update(plan[i][1] - plan[i][0])

    if todo and workers == 0 and scheduler is None:
        for i in todo:
            finished(i, build_shard(*task_args, i, device, batch_size))
    elif todo:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")  # fmt: skip  # any free port: 8787 may be taken
        try:
            with Client(scheduler or cluster) as client:
                t_work = time.perf_counter()  # throughput excludes the cluster's start-up
                bar.reset(total=n_rows)
                bar.update(kept_rows)
                futures = {client.submit(build_shard, *task_args, i, device, batch_size,
                                         key=f"render-{names[i]}", pure=False): i for i in todo}  # fmt: skip
                for future in as_completed(futures):
                    finished(futures[future], future.result())
        finally:
            if cluster is not None:
                cluster.close()
    bar.close()
    elapsed = time.perf_counter() - t0
    built = sum(plan[i][1] - plan[i][0] for i in todo)
    entries = list(done.values())
    return {
        "out": os.fspath(out),
        "shards": len(names),
        "shards_built": len(todo),
        "shards_kept": skipped,
        "samples": sum(e.samples for e in entries),
        "rejects": sum(len(e.rejects) for e in entries),
        "seconds": round(elapsed, 3),
        "rows_per_s_built": round(built / max(time.perf_counter() - t_work, 1e-9), 1) if todo else None,
    }


# ---------------------------------------------------------------------------------------------------------
# command line (stages.render_iuv wires --dataset mode to these two functions)


def _add(parser: argparse.ArgumentParser, flag: str, **kw: Any) -> None:
    """Add ``flag`` unless the parser already has it (the render CLI may define --device etc. itself)."""
    if flag not in parser._option_string_actions:  # argparse has no public lookup of defined flags
        parser.add_argument(flag, **kw)


def add_dataset_arguments(
    parser: argparse.ArgumentParser, mode_group: argparse._MutuallyExclusiveGroup | None = None
) -> argparse.ArgumentParser:
    """Add the ``--dataset`` mode options of ``stages.render_iuv`` to ``parser`` (none is required here;
    :func:`main_dataset` checks them), skipping flags the parser already defines. ``--dataset`` goes into
    ``mode_group`` when given (e.g. the CLI's group of exclusive modes beside ``--demo``)."""
    if "--dataset" not in parser._option_string_actions:
        (mode_group or parser).add_argument(
            "--dataset", help="dataset name: render its manifests into shards"
        )
    _add(parser, "--root", help="the dataset's root folder: manifest image_path values are relative to it")
    _add(parser, "--manifests", help="folder with NAME/SPLIT.parquet manifests")
    _add(parser, "--out", help="shard root; writes OUT/NAME/SPLIT/NAME-SPLIT-000000.tar ... + index.json")
    _add(parser, "--split", action="append", help="split(s) to render (default: every manifest of NAME)")
    _add(parser, "--device", default="auto", choices=("auto", "cpu", "cuda"))
    _add(parser, "--workers", type=int, default=1, help="LocalCluster processes (0: in this process)")
    _add(parser, "--scheduler", default=None, help="address of an existing Dask scheduler to use instead")
    _add(parser, "--shard-size", type=int, default=1000, help="samples per shard")
    _add(parser, "--crop-size", type=int, default=256, help="stored crop side in pixels")
    _add(parser, "--margin", type=float, default=RENDER_CROP_MARGIN, help="crop side / person box side")
    _add(parser, "--batch-size", type=int, default=32, help="rows per renderer call")
    _add(parser, "--renderer", default=DEFAULT_RENDERER, help="render function as module:function")
    _add(
        parser,
        "--body-model",
        default=None,
        help="built-in name, SMPL file or SMPL folder (default: $DANET_BODY_MODEL, else anny-smpl24)",
    )
    _add(
        parser,
        "--dense-parts",
        default=None,
        help="DensePose's UV_Processed.mat for an SMPL body (default: $DANET_DENSE_PARTS, else the body's "
        "own; '' = the body's own)",
    )
    _add(parser, "--extra-regressor", default=None,
         help="SPIN's J_regressor_extra.npy: SPIN's 24 keypoints for an SMPL body (default: "
         "$DANET_EXTRA_REGRESSOR; '' = none)")  # fmt: skip
    _add(parser, "--no-progress", action="store_true", help="no progress bar")
    return parser


def main_dataset(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Render every requested split of ``args.dataset``; prints and returns one summary per split."""
    missing = [f"--{k}" for k in ("dataset", "root", "manifests", "out") if not getattr(args, k, None)]
    if missing:
        raise SystemExit(f"--dataset mode needs {', '.join(missing)}")
    manifest_dir = Path(args.manifests) / args.dataset
    splits = args.split or sorted(p.stem for p in manifest_dir.glob("*.parquet") if p.stem != "rejects")
    if not splits:
        raise SystemExit(f"no manifests in {manifest_dir}")
    body = BodySpec.from_env(
        model=getattr(args, "body_model", None), dense_parts=getattr(args, "dense_parts", None),
        extra_regressor=getattr(args, "extra_regressor", None),
    )  # fmt: skip
    if args.renderer == DEFAULT_RENDERER:
        from pipeline.body.smpl_io import BodyModelFileError

        try:
            body.check_renderable()  # before any worker starts: one clear message, not one per shard
        except BodyModelFileError as err:
            raise SystemExit(f"render_iuv: {err}") from None
    summaries = []
    for split in splits:
        manifest = manifest_dir / f"{split}.parquet"
        if not manifest.is_file():
            raise SystemExit(f"manifest not found: {manifest}")
        params = ShardParams(
            args.dataset, split, args.shard_size, args.crop_size, args.margin, args.renderer, body
        )
        summary = render_dataset(
            manifest, args.root, fmt.shard_dir(args.out, args.dataset, split), params,
            workers=args.workers, scheduler=args.scheduler, device=args.device,
            batch_size=args.batch_size, progress=not args.no_progress,
        )  # fmt: skip
        print(json.dumps(summary), flush=True)
        summaries.append(summary)
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_dataset_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    main_dataset(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
