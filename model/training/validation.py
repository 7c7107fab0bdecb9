"""A small validation pass at every checkpoint: the validation curve of a run (`val_curve.json`).

With ``run.val_samples`` > 0 and ``data.val`` set, the trainer calls :func:`record_validation` after each
checkpoint: the first ``val_samples`` samples of the validation split (fixed order, no augmentation) are
scored like ``stages.evaluate`` does (model/evaluation.py: PA-MPJPE, MPJPE in mm, the IUV estimator's part
accuracy in percent) and one row ``{step, pa_mpjpe, mpjpe, iuv_part_accuracy, samples}`` is written to
OUT/val_curve.json (rows of later steps, left by a run that was resumed from an earlier checkpoint, are
replaced).

Training is not disturbed: the pass runs under ``torch.no_grad`` in eval mode (no BatchNorm statistics
move), every random state it could touch (torch CPU and CUDA, numpy's and python's global generators) is
restored afterwards, and the training data stream is a separate loader. A run with validation is therefore
bit-identical to one without it.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from pipeline.files import atomic_write_text

VAL_CURVE_FILE = "val_curve.json"
VAL_KEYS = ("pa_mpjpe", "mpjpe", "iuv_part_accuracy")


@contextmanager
def random_state_kept():
    """Everything random inside the block leaves the global generators exactly as they were."""
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)  # noqa: NPY002


@functools.lru_cache(maxsize=4)
def _metadata(folder: str) -> dict:
    from model.evaluation import shard_metadata

    return shard_metadata(folder)


def validate(network, folder: str | Path, samples: int, batch_size: int, device) -> dict[str, float]:
    """Scores of `network` on the first `samples` samples of the shard split in `folder` (see module doc)."""
    from model.evaluation import evaluate
    from pipeline.augment import AugmentConfig
    from pipeline.loader import Source, make_dataset

    dataset = make_dataset(
        [Source(str(folder))], batch_size=batch_size, augment=AugmentConfig(enabled=False),
        shuffle=False, onehot=False, seed=0,
    )  # fmt: skip
    batches = itertools.islice(iter(dataset), max(1, -(-samples // batch_size)))
    was_training = network.training
    try:
        summary, _, _ = evaluate(network, batches, _metadata(str(folder)), lambda _: network.body, device, 0)
    finally:
        network.train(was_training)
    return {key: summary.get(key) for key in (*VAL_KEYS, "samples")}


def append_row(path: Path, row: dict) -> list[dict]:
    """Rewrite the JSON list at `path` (atomically) with `row` added and rows of its step or later dropped."""
    rows = json.loads(path.read_text()) if path.is_file() else []
    rows = [r for r in rows if r["step"] < row["step"]] + [row]
    atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
    return rows


def record_validation(trainer) -> dict | None:
    """The trainer's hook: validate at trainer.step and append to OUT/val_curve.json (main process only;
    nothing when run.val_samples is 0 or data.val is unset / has no shards)."""
    cfg = trainer.cfg
    samples = getattr(cfg.run, "val_samples", 0)
    folder = cfg.data.val
    if not samples or not folder or not trainer.dist.is_main or not (Path(folder) / "index.json").is_file():
        return None
    with random_state_kept(), torch.no_grad():
        scores = validate(trainer.network, folder, samples, cfg.data.batch_size, trainer.device)
    row = {"step": trainer.step, **scores}
    append_row(trainer.out_dir / VAL_CURVE_FILE, row)
    return row
