"""The demo chain at toy size, for tests: synthesize -> ingest (-> render_iuv), in one folder layout.

ROOT/raw/synth (images, SPIN npz, mean_params.npz), ROOT/manifests/synth/*.parquet, ROOT/shards/synth/SPLIT.
"""

from __future__ import annotations

from pathlib import Path


def synth_manifests(root: Path, n: int, size: int) -> Path:
    """Synthesizes `n` people on `size`-pixel images and ingests them; returns `root`."""
    from stages.ingest import main as ingest
    from stages.synthesize import main as synthesize

    out = ["--out", str(root / "raw" / "synth"), "--n", str(n), "--size", str(size), "--no-progress"]
    assert synthesize(out) == 0
    assert ingest(["--dataset", "synth", "--root", str(root / "raw"), "--out", str(root / "manifests")]) == 0
    return root


def synth_shards(root: Path, n: int, size: int, crop_size: int) -> Path:
    """:func:`synth_manifests`, then every split rendered in-process into ROOT/shards; returns `root`."""
    from stages.render_iuv import main as render_iuv

    synth_manifests(root, n, size)
    args = [
        "--dataset",
        "synth",
        "--root",
        str(root / "raw" / "synth"),
        "--manifests",
        str(root / "manifests"),
    ]
    args += ["--out", str(root / "shards"), "--workers", "0", "--crop-size", str(crop_size), "--no-progress"]
    assert render_iuv(args) == 0
    return root
