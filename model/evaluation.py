"""Evaluation protocols of the paper on shards: 3D joint errors, mesh errors, a mean-pose baseline, visuals.

Joints (as SPIN and DaNet evaluate): mesh -> H36M-17 regressor -> pelvis-relative (H36M joint 0) -> the 14
LSP joints; MPJPE and PA-MPJPE (similarity Procrustes) in millimetres. When the body model has no H36M
regressor the SPIN-24 regressor's first 14 (LSP) joints are used, pelvis = midpoint of the hips. Ground
truth comes from the sample's SMPL fit when it has one (gendered body models when given, as 3DPW's
protocol asks), else from its 3D keypoints. Mesh errors (PVE, PVE-S, PVE-P; pelvis-relative) need SMPL.
The baseline predicts the network's mean parameters for every sample.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from model import metrics
from model.training.targets import batch_to_inputs
from pipeline import shards as fmt
from pipeline.body.constants import H36M17_PELVIS, H36M17_TO_LSP14, NUM_PARTS, PART_TO_SEGMENT

SPIN24_HIPS = (2, 3)  # right_hip, left_hip
COCO17_TO_SPIN24 = (19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0)  # as pipeline.datasets.coco
INPUT_SIZE = 224  # the evaluation crop: the person box maps exactly onto it (augmentation off)


def mask_area(mask: str | None) -> float | None:
    """Pixel area of a COCO segmentation stored as JSON text (polygons or RLE); None when absent."""
    if not mask:
        return None
    from pycocotools import mask as mask_utils

    segmentation = json.loads(mask) if isinstance(mask, str) else mask
    if isinstance(segmentation, list):  # polygons [[x0, y0, x1, y1, ...], ...]: shoelace formula
        area = 0.0
        for polygon in segmentation:
            xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
            area += 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1)))
        return area
    if isinstance(segmentation.get("counts"), list):
        segmentation = mask_utils.frPyObjects(segmentation, *segmentation["size"])
    return float(mask_utils.area(segmentation))


def coco_keypoint_ap(samples: list[dict]) -> dict[str, float]:
    """COCO keypoint AP (pycocotools' COCOeval) of predicted 2D keypoints, in the evaluation-crop frame.

    samples: dicts with "gt" (17, 3) pixels + visibility, "pred" (17, 2) pixels and "area" (person area in
    the same frame). Returns AP, AP50, AP75 in percent.
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i, "width": INPUT_SIZE, "height": INPUT_SIZE} for i in range(len(samples))]
    annotations, results = [], []
    for i, sample in enumerate(samples):
        gt = np.asarray(sample["gt"], dtype=np.float64)
        visible = gt[:, 2] > 0
        keypoints = np.concatenate([gt[:, :2], np.where(visible, 2.0, 0.0)[:, None]], axis=1)
        annotations.append({
            "id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "area": float(sample["area"]),
            "bbox": [0.0, 0.0, float(INPUT_SIZE), float(INPUT_SIZE)], "keypoints": keypoints.reshape(-1).tolist(),
            "num_keypoints": int(visible.sum()),
        })  # fmt: skip
        pred = np.concatenate([np.asarray(sample["pred"], np.float64), np.ones((17, 1))], axis=1)
        results.append(
            {"image_id": i, "category_id": 1, "keypoints": pred.reshape(-1).tolist(), "score": 1.0}
        )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground_truth = COCO()
        ground_truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}],
        }
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {
        "AP": round(100 * evaluation.stats[0], 2),
        "AP50": round(100 * evaluation.stats[1], 2),
        "AP75": round(100 * evaluation.stats[2], 2),
    }


def protocol_joints(body, vertices: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices -> (B, 14, 3) pelvis-relative LSP joints (metres) of the evaluation protocol."""
    if "h36m17" in body.regressor_names:
        joints = body.regress(vertices, "h36m17")
        return joints[:, list(H36M17_TO_LSP14)] - joints[:, H36M17_PELVIS : H36M17_PELVIS + 1]
    joints = body.regress(vertices, "spin24")
    return lsp14_from_spin24(joints)


def lsp14_from_spin24(joints: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3) SPIN-24 keypoints -> (B, 14, 3) LSP joints relative to the hips' midpoint."""
    return joints[:, :14] - joints[:, list(SPIN24_HIPS)].mean(1, keepdim=True)


def shard_metadata(folder: str | Path) -> dict[str, dict]:
    """key -> the sample's json record (action, subject, gender, ...) for every sample of a split's shards."""
    out = {}
    for url in fmt.shard_urls(folder):
        for sample in fmt.tar_samples(url):
            out[sample["__key__"]] = json.loads(sample["json"])
    return out


def mesh_errors(
    pred_vertices: torch.Tensor, gt_vertices: torch.Tensor, pred_pelvis, gt_pelvis
) -> dict[str, torch.Tensor]:
    """Per-sample PVE (pelvis-relative), PVE-S and PVE-P in mm."""
    return {
        "pve": metrics.pve(pred_vertices, gt_vertices, pred_pelvis, gt_pelvis),
        "pve_s": metrics.pve_s(pred_vertices, gt_vertices),
        "pve_p": metrics.pve_p(pred_vertices, gt_vertices),
    }


def sample_errors(
    body, gt_bodies: Callable[[str], object], batch: dict, pred_vertices: torch.Tensor, genders: list[str]
) -> dict[str, torch.Tensor]:
    """Per-sample errors (mm) of predicted vertices against the batch's ground truth."""
    pred_joints = protocol_joints(body, pred_vertices)
    has_smpl = batch["has_smpl"].bool()
    gt_joints = lsp14_from_spin24(batch["kp3d"][..., :3].to(pred_vertices))
    gt_vertices = torch.zeros_like(pred_vertices)
    for gender in sorted(set(genders)):
        rows = [i for i, g in enumerate(genders) if g == gender and bool(has_smpl[i])]
        if not rows:
            continue
        gt_body = gt_bodies(gender)
        with torch.no_grad():
            posed = gt_body(
                betas=batch["betas"][rows].to(pred_vertices), pose=batch["pose"][rows].to(pred_vertices)
            )
        gt_vertices[rows] = posed.vertices
        gt_joints[rows] = protocol_joints(gt_body, posed.vertices)
    out = {
        "mpjpe": metrics.mpjpe(pred_joints, gt_joints),
        "pa_mpjpe": metrics.pa_mpjpe(pred_joints, gt_joints),
    }
    pelvis = lambda v, b: b.regress(v, "smpl24")[:, 0]  # noqa: E731 - local shorthand
    errors = mesh_errors(pred_vertices, gt_vertices, pelvis(pred_vertices, body), pelvis(gt_vertices, body))
    for name, value in errors.items():
        out[name] = torch.where(has_smpl, value, torch.full_like(value, float("nan")))
    return out


def iuv_scores(index_logits: torch.Tensor, targets: dict) -> dict[str, torch.Tensor]:
    """Per-sample scores (percent) of the IUV estimator's part index against the ground-truth maps:
    part accuracy (24 parts), segment accuracy (side and front/back merged) and foreground IoU.

    index_logits: (B, 25, h, w); targets: batch_to_inputs's, with "iuv" (B, 75, h, w) one-hot and "has_iuv"
    (B,). NaN for samples without ground-truth IUV."""
    gt_index = targets["iuv"][:, : NUM_PARTS + 1].argmax(1)
    pred_index = index_logits.argmax(1)
    scores = {
        "iuv_part_accuracy": metrics.part_accuracy(pred_index, gt_index),
        "iuv_segment_accuracy": metrics.part_accuracy(pred_index, gt_index, PART_TO_SEGMENT),
        "iuv_foreground_iou": metrics.foreground_iou(pred_index, gt_index),
    }
    missing = torch.full_like(scores["iuv_part_accuracy"], float("nan"))
    return {name: torch.where(targets["has_iuv"], value, missing) for name, value in scores.items()}


def coco_entries(
    keys: list[str], metadata: dict[str, dict], kp2d: torch.Tensor, pred2d: torch.Tensor | None
) -> list[dict]:
    """OKS inputs for the samples that carry a COCO segmentation: GT and predicted COCO-17 keypoints in
    evaluation-crop pixels, and the person's mask area scaled from the image into that crop."""
    if pred2d is None:
        return []
    out = []
    for i, key in enumerate(keys):
        meta = metadata.get(key, {})
        area = mask_area(meta.get("mask"))
        if area is None or not meta.get("scale"):
            continue
        factor = INPUT_SIZE / (200.0 * float(meta["scale"]))  # image pixels -> evaluation-crop pixels
        gt = kp2d[i, list(COCO17_TO_SPIN24)].cpu().numpy()
        pred = (pred2d[i, list(COCO17_TO_SPIN24)].detach().cpu().numpy() * (INPUT_SIZE / 2.0)) + (
            INPUT_SIZE - 1
        ) / 2.0
        out.append({"gt": gt, "pred": pred, "area": area * factor**2})
    return out


def mean_pose_vertices(network, batch_size: int) -> torch.Tensor:
    """(B, V, 3) vertices of the network's mean parameters (the baseline prediction)."""
    rot = network.to_rotmats(torch.zeros_like(network.mean_rotation).expand(batch_size, -1, -1))
    betas = network.mean_betas.expand(batch_size, -1)
    with torch.no_grad():
        return network.body(betas=betas, pose=rot).vertices


def summarise(records: list[dict]) -> dict:
    """Mean of every error over the samples that have it; count of samples."""
    keys = [k for k in records[0] if k not in ("key", "action")] if records else []
    out = {"samples": len(records)}
    for key in keys:
        values = np.array([r[key] for r in records], dtype=np.float64)
        values = values[np.isfinite(values)]
        out[key] = round(float(values.mean()), 2) if len(values) else None
    return out


def evaluate(
    network,
    batches: Iterable[dict],
    metadata: dict[str, dict],
    gt_bodies: Callable[[str], object],
    device: torch.device,
    keep_examples: int = 8,
    ground_truth_maps: bool = False,
) -> tuple[dict, list[dict], list[dict]]:
    """Runs the network over `batches`; returns (summary, per-sample records, example predictions).

    `ground_truth_maps`: the streams read ground-truth IUV maps at the true joints (DaNet.forward), which
    scores the streams as if the IUV estimator were perfect."""
    body = network.body
    cfg = network.cfg
    records, examples, coco_samples = [], [], []
    network.eval()
    for batch in batches:
        image, targets = batch_to_inputs(batch, cfg.image_size, cfg.feature_size, body, device)
        with torch.no_grad():
            pred = network(image, targets, ground_truth_maps=True) if ground_truth_maps else network(image)
        keys = list(batch["key"])
        genders = [metadata.get(k, {}).get("gender", "n") or "n" for k in keys]
        batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        errors = sample_errors(body, gt_bodies, batch, pred["vertices"], genders)
        errors.update(iuv_scores(pred["index_logits"], targets))
        baseline = sample_errors(body, gt_bodies, batch, mean_pose_vertices(network, len(keys)), genders)
        coco_samples += coco_entries(keys, metadata, batch["kp2d"], pred.get("keypoints2d"))
        for i, key in enumerate(keys):
            record = {"key": key, "action": metadata.get(key, {}).get("action", "") or ""}
            record.update({name: float(v[i]) for name, v in errors.items()})
            record.update({f"baseline_{name}": float(v[i]) for name, v in baseline.items()})
            records.append(record)
        if len(examples) < keep_examples:
            take = min(keep_examples - len(examples), len(keys))
            for i in range(take):
                examples.append(
                    {
                        "image": batch["image"][i].cpu(),
                        "iuv": batch["iuv"][i].cpu(),
                        "pred": {
                            k: pred[k][i].detach().cpu()
                            for k in ("index_logits", "u", "v", "cam", "vertices")
                        },
                    }
                )
    summary = summarise(records)
    per_action: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        if record["action"]:
            per_action[record["action"]].append(record)
    if per_action:
        summary["per_action"] = {
            action: {k: v for k, v in summarise(rows).items() if k in ("samples", "mpjpe", "pa_mpjpe")}
            for action, rows in sorted(per_action.items())
        }
    if coco_samples:
        summary["coco_keypoints"] = coco_keypoint_ap(coco_samples)
    if summary.get("baseline_pa_mpjpe"):
        summary["pa_mpjpe_ratio_to_mean_pose"] = round(summary["pa_mpjpe"] / summary["baseline_pa_mpjpe"], 3)
    return summary, records, examples
