"""The render stage's orchestration: one split's manifest -> its shards + ``index.json``, on Dask or in process.

:func:`render_dataset` plans the split's shards (pipeline/shard_build.py: shard ``i`` holds sorted rows
``[i * shard_size, (i + 1) * shard_size)``), keeps the shards whose index entry still verifies (size + md5)
under the same recorded parameters, deletes leftovers, and maps :func:`pipeline.shard_build.build_shard`
over the rest. ``index.json`` is rewritten atomically after each shard, so a killed run leaves only whole
shards and a rerun redoes only what is missing. :func:`add_dataset_arguments` and :func:`main_dataset` are
the ``--dataset`` mode of ``stages.render_iuv`` (also ``python -m pipeline.render_job``).

The renderer is named by a spec (``--renderer``, recorded in index.json) and loaded in each worker; its
interface is :class:`pipeline.renderers.Renderer`. docs/design.md, "The render stage", has the overview.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from pipeline import shards as fmt
from pipeline.body.spec import BodySpec
from pipeline.conventions import RENDER_CROP_MARGIN
from pipeline.files import file_digest
from pipeline.renderers import DEFAULT_RENDERER, RendererSpecError, find_renderer, records_body
from pipeline.shard_build import ShardParams, build_shard, load_manifest, plan_shards


def _index_params(params: ShardParams, manifest_path: str) -> dict[str, Any]:
    """What index.json records as the shards' making: every parameter, the manifest's md5, the per-sample
    checksum scheme and the body files with their sha256 (when the renderer takes them: the default one
    does), so a change to any of them rebuilds the shards. Raises RendererSpecError for a bad spec."""
    recorded = asdict(params)
    recorded["body"] = params.body.identity() if records_body(params.renderer) else None
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
    index_params = _index_params(params, manifest_path)  # a bad renderer spec fails here, before any write
    out.mkdir(parents=True, exist_ok=True)
    n_rows = load_manifest(manifest_path).num_rows
    plan = plan_shards(n_rows, params.shard_size)
    names = [fmt.shard_name(params.dataset, params.split, i) for i in range(len(plan))]
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


class ArgumentAdder(Protocol):
    """What :func:`add_dataset_arguments` needs of a parser or an argument group."""

    def add_argument(self, *names: str, **kw: Any) -> argparse.Action: ...


def add_dataset_arguments(
    parser: argparse.ArgumentParser, mode_group: ArgumentAdder | None = None
) -> argparse.ArgumentParser:
    """Add the ``--dataset`` mode options of ``stages.render_iuv`` to ``parser``, each once (none is
    required here: :func:`main_dataset` checks them). ``--dataset`` goes into ``mode_group`` when given
    (e.g. the CLI's group of exclusive modes beside ``--demo``). A parser that already has one of these
    flags is a conflict argparse reports."""
    (mode_group or parser).add_argument("--dataset", help="dataset name: render its manifests into shards")
    add = parser.add_argument
    add("--root", help="the dataset's root folder: manifest image_path values are relative to it")
    add("--manifests", help="folder with NAME/SPLIT.parquet manifests")
    add("--out", help="shard root; writes OUT/NAME/SPLIT/NAME-SPLIT-000000.tar ... + index.json")
    add("--split", action="append", help="split(s) to render (default: every manifest of NAME)")
    add("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add("--workers", type=int, default=1, help="LocalCluster processes (0: in this process)")
    add("--scheduler", default=None, help="address of an existing Dask scheduler to use instead")
    add("--shard-size", type=int, default=1000, help="samples per shard")
    add("--crop-size", type=int, default=256, help="stored crop side in pixels")
    add("--margin", type=float, default=RENDER_CROP_MARGIN, help="crop side / person box side")
    add("--batch-size", type=int, default=32, help="rows per renderer call")
    add("--renderer", default=DEFAULT_RENDERER,
        help="module:name of a renderer or RendererFactory (pipeline/renderers.py)")  # fmt: skip
    add("--body-model", default=None,
        help="built-in name, SMPL file or SMPL folder (default: $DANET_BODY_MODEL, else anny-smpl24)")  # fmt: skip
    add("--dense-parts", default=None,
        help="DensePose's UV_Processed.mat for an SMPL body (default: $DANET_DENSE_PARTS, else the body's "
        "own; '' = the body's own)")  # fmt: skip
    add("--extra-regressor", default=None,
        help="SPIN's J_regressor_extra.npy: SPIN's 24 keypoints for an SMPL body (default: "
        "$DANET_EXTRA_REGRESSOR; '' = none)")  # fmt: skip
    add("--no-progress", action="store_true", help="no progress bar")
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
    try:
        find_renderer(args.renderer)  # before any worker starts: one clear message, not one per shard
    except RendererSpecError as err:
        raise SystemExit(f"render_iuv: {err}") from None
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
