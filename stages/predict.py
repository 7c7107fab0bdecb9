"""Run a trained DaNet checkpoint on photographs: a mesh, parameters, IUV map and overlay per person.

    python -m stages.predict --checkpoint checkpoints/demo/model.pt IMAGE_OR_DIR ...
                             [--bbox x,y,w,h | --boxes FILE.json] [--out predictions]
                             [--device auto|cpu|cuda] [--batch-size 16]

Each person is cropped like the training data (model/inference.py): from --bbox (one box in full-image
pixels, used for every input image), from --boxes (a JSON list of {"image": name or path, "bbox": [x, y, w,
h]} and/or a COCO object with "images" and "annotations"; an image with no entry there is used whole), or
else the whole image, centred. Per person, OUT/<image stem>/person<k>_ holds: mesh.obj (the body model's
topology in the image's camera frame, metres), params.json (pose axis-angle, betas, crop and full-image
cameras, box, and what the checkpoint was trained on), iuv.png (predicted I, U, V codes at the network's
map size), iuv_vis.png (the same for people: part colours and U/V iso-lines over the photo, full size),
overlay.png (the box and the mesh in part colours over the photo, full size) and side.png (the mesh seen
from its side). The checkpoint's training data is printed first, with a warning when it has only seen
synthetic images. Folders are read non-recursively (JSON files there are box files, not images); files that
are not readable images, and boxes lying entirely outside their image, are reported on stderr and skipped;
a box file none of whose entries matches an input is an error. Exit code 0: all inputs done; 1: some input
failed; 2: usage error. The last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model import inference
from model.training.provenance import checkpoint_provenance, describe, synthetic_only_warning
from stages.cli import resolve_device, stage_parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser("predict", __doc__)
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_DIR", help="images or folders")
    parser.add_argument("--checkpoint", type=Path, required=True, help="model.pt or last.pt of a run")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--bbox", default=None, help="person box x,y,w,h in full-image pixels")
    boxes.add_argument("--boxes", type=Path, default=None, help="JSON file of person boxes (see below)")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run")
    parser.add_argument("--batch-size", type=int, default=16, help="persons per network batch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


NOT_IMAGES = (".json",)  # in a folder: box files (e.g. photos/boxes.json), not images


def usage_error(message: str) -> int:
    print(f"predict: {message}", file=sys.stderr)
    return 2


def expand_inputs(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files to process (folders listed non-recursively, sorted, hidden and box files left out) and missing
    inputs."""
    files, missing = [], []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.iterdir())
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in NOT_IMAGES
            )  # fmt: skip
        elif path.is_file():
            files.append(path)
        else:
            missing.append((path, "no such file or folder"))
    return files, missing


class Writer:
    """Collects cropped persons and, per full batch, predicts and writes their outputs."""

    def __init__(self, network, device: torch.device, out: Path, batch_size: int, report):
        self.network, self.device, self.out, self.batch_size = network, device, out, batch_size
        self.report = report  # report(path, reason) for an input whose outputs could not be written
        self.faces = network.body.faces.cpu()
        self.pending: list[dict] = []
        self.persons = 0
        self.failed: set[Path] = set()
        self.max_residual = 0.0
        self.extra: dict = {}  # added to every params.json (what the checkpoint was trained on)
        self.parts = None  # dense parts colouring the overlay's mesh (inference.dense_parts_for)

    def add(self, path: Path, folder: str, image: np.ndarray, boxes: list[inference.PersonBox]) -> None:
        for k, box in enumerate(boxes):
            crop, matrix = inference.crop_person(image, box)
            self.pending.append(
                dict(path=path, folder=folder, image=image, k=k, box=box, crop=crop, matrix=matrix)
            )
            if len(self.pending) >= self.batch_size:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        pred = inference.predict_crops(self.network, np.stack([p["crop"] for p in batch]), self.device)
        cameras = [
            inference.full_image_camera(
                pred["vertices"][i : i + 1], pred["cam"][i : i + 1], p["matrix"][None], p["image"].shape[:2],
                self.network.cfg.loss.focal_length, self.network.cfg.loss.image_size,
            )
            for i, p in enumerate(batch)
        ]  # fmt: skip
        for i, (p, camera) in enumerate(zip(batch, cameras, strict=True)):
            if p["path"] in self.failed:
                continue
            one = {key: value[i : i + 1] for key, value in pred.items()}
            try:
                inference.write_person(
                    self.out / p["folder"], f"person{p['k']}", p["image"], one, camera, 0, p["box"],
                    self.faces, str(p["path"]), self.device, extra=self.extra, parts=self.parts,
                )  # fmt: skip
            except (OSError, ValueError) as err:
                self.failed.add(p["path"])
                self.report(p["path"], f"cannot write outputs ({err})")
                continue
            self.persons += 1
            self.max_residual = max(self.max_residual, float(camera["residual_px"][0]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.batch_size < 1:
        return usage_error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        bbox = inference.parse_bbox(args.bbox) if args.bbox is not None else None
    except ValueError as err:
        return usage_error(str(err))
    if not args.checkpoint.is_file():
        return usage_error(f"checkpoint not found: {args.checkpoint}")
    device = resolve_device("predict", args.device)
    if device is None:
        return 2
    files, failures = expand_inputs(args.inputs)
    box_map: dict[Path, list] = {}
    if args.boxes is not None:
        try:
            pairs = inference.load_boxes(args.boxes)
        except ValueError as err:
            return usage_error(str(err))
        box_map, unmatched = inference.match_boxes(files, pairs, args.boxes.parent)
        for ref in unmatched:
            print(f"predict: {args.boxes}: box for {ref!r} matches no input image; ignored", file=sys.stderr)
        if pairs and not box_map:
            print(f"predict: {args.boxes}: none of its {len(pairs)} boxes matches an input image (names are "
                  "matched against the inputs' paths and file names); nothing done", file=sys.stderr)  # fmt: skip
            return 1
    from model.training.checkpoint import model_from_checkpoint

    try:
        network, _ = model_from_checkpoint(args.checkpoint, device=device)
    except (ValueError, KeyError, RuntimeError) as err:
        return usage_error(f"cannot load checkpoint {args.checkpoint}: {err}")
    provenance = checkpoint_provenance(args.checkpoint)
    warning = synthetic_only_warning(provenance)
    print(f"predict: {args.checkpoint}: {describe(provenance)}", file=sys.stderr)
    if warning:
        print(f"predict: WARNING: {warning}", file=sys.stderr)

    def report(path: Path, reason: str) -> None:
        failures.append((path, reason))
        tqdm.write(f"predict: skipped {path}: {reason}", file=sys.stderr)

    for path, reason in failures:  # inputs that do not exist
        print(f"predict: skipped {path}: {reason}", file=sys.stderr)
    writer = Writer(network, device, args.out, args.batch_size, report)
    writer.extra = {"training": provenance, "warning": warning}
    writer.parts = inference.dense_parts_for((provenance or {}).get("body_model", "anny-smpl24"))
    folders: dict[str, int] = {}
    for path in tqdm(files, unit="img", desc="predict", disable=args.no_progress):
        try:
            image = inference.read_image(path)
        except ValueError as err:
            report(path, str(err))
            continue
        if bbox is not None:
            boxes = [inference.box_from_xywh(bbox)]
        elif path in box_map:
            boxes = [inference.box_from_xywh(b) for b in box_map[path]]
        else:
            if args.boxes is not None:
                tqdm.write(f"predict: {path}: no box in {args.boxes}; using the whole image", file=sys.stderr)
            boxes = [inference.whole_image_box(*image.shape[:2])]
        reasons = [inference.box_outside_image(b.bbox, *image.shape[:2]) if b.bbox else None for b in boxes]
        if any(reasons):
            report(path, "; ".join(r for r in reasons if r))
        boxes = [b for b, reason in zip(boxes, reasons, strict=True) if reason is None]
        if not boxes:
            continue
        folders[path.stem] = folders.get(path.stem, 0) + 1
        folder = path.stem if folders[path.stem] == 1 else f"{path.stem}_{folders[path.stem]}"
        writer.add(path, folder, image, boxes)
    writer.flush()
    failed = {path for path, _ in failures}
    summary = {
        "images": sum(path not in failed for path in files),
        "persons": writer.persons,
        "failed": len(failed),
        "failed_files": sorted(map(str, failed)),
        "out": str(args.out),
        "device": str(device),
        "max_camera_residual_px": round(writer.max_residual, 4),
        "seconds": round(time.perf_counter() - start, 2),
        "warning": warning,
    }
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
