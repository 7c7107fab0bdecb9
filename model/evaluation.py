"""Evaluation on shards with the literature's protocols: 3D joint errors, mesh errors, a mean-pose baseline.

Joints: model.protocols says, per dataset, which joints (J14 / J17), which ground truth (3D keypoints S or
the gendered SMPL mesh) and which root; MPJPE and PA-MPJPE (similarity Procrustes) in millimetres over the
labelled joints. Mesh errors need the sample's SMPL fit, and are all relative to each body's pelvis (SMPL
joint 0), in millimetres:

* PVE: the posed meshes;
* PVE-S (the paper, Sec. 5.2): both models in the rest pose (pose set to zero), each with its own shape:
  the prediction's betas on the network's body, the fit's betas on the ground-truth (gendered) body;
* PVE-P: both models with zero shape, each with its own pose, on the network's body (so a right pose scores
  0 whatever the gender of the ground truth);
* pve_scale_aligned / pve_procrustes: the posed meshes after aligning scale and translation, or after
  similarity Procrustes (alignment errors, not the paper's).

The baseline predicts the network's mean parameters for every sample.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model import metrics
from model.protocols import (
    DEFAULT_PROTOCOL,
    Protocol,
    compares_with_papers,
    keypoint_joints,
    regressed_joints,
)
from model.training.targets import batch_to_inputs
from pipeline import shards as fmt
from pipeline.body.constants import NUM_PARTS, PART_TO_SEGMENT
from pipeline.conventions import BBOX_UNIT, NETWORK_CROP, pixel_centre

COCO17_TO_SPIN24 = (19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0)  # as pipeline.datasets.coco
INPUT_SIZE = NETWORK_CROP  # the evaluation crop: the person box maps exactly onto it (augmentation off)


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


def protocol_joints(body, vertices: torch.Tensor, num_joints: int = 14) -> torch.Tensor:
    """(B, V, 3) vertices -> (B, num_joints, 3) root-relative protocol joints (metres); see model.protocols."""
    return regressed_joints(body, vertices, num_joints)


def shard_metadata(folder: str | Path) -> dict[str, dict]:
    """key -> the sample's json record (action, subject, gender, ...) for every sample of a split's shards."""
    out = {}
    for url in fmt.shard_urls(folder):
        for sample in fmt.tar_samples(url):
            out[sample["__key__"]] = json.loads(sample["json"])
    return out


@dataclass(frozen=True)
class Prediction:
    """betas: (B, 10); rotmats: (B, 24, 3, 3) local joint rotations; vertices: (B, V, 3) metres, posed by
    the network's body."""

    betas: torch.Tensor
    rotmats: torch.Tensor
    vertices: torch.Tensor


def _pelvis(body, vertices: torch.Tensor) -> torch.Tensor:
    return body.regress(vertices, "smpl24")[:, 0]


def mesh_errors(body, gt_body, pred: Prediction, gt_betas: torch.Tensor, gt_pose: torch.Tensor) -> dict:
    """Per-sample PVE, PVE-S, PVE-P (the paper's) and the two alignment errors, mm (module docstring).

    body: the network's; gt_body: the ground truth's (gendered where the protocol asks); gt_betas (B, 10),
    gt_pose (B, 72) axis-angle or (B, 24, 3, 3)."""
    with torch.no_grad():
        gt_vertices = gt_body(betas=gt_betas, pose=gt_pose).vertices
        rest_pred = body(betas=pred.betas).vertices
        rest_gt = gt_body(betas=gt_betas).vertices
        mean_shape = torch.zeros_like(pred.betas)
        pose_pred = body(betas=mean_shape, pose=pred.rotmats).vertices
        pose_gt = body(betas=mean_shape, pose=gt_pose).vertices

    def relative(a, body_a, b, body_b):
        return metrics.pve(a, b, _pelvis(body_a, a), _pelvis(body_b, b))

    return {
        "pve": relative(pred.vertices, body, gt_vertices, gt_body),
        "pve_s": relative(rest_pred, body, rest_gt, gt_body),
        "pve_p": relative(pose_pred, body, pose_gt, body),
        "pve_scale_aligned": metrics.pve_scale_aligned(pred.vertices, gt_vertices),
        "pve_procrustes": metrics.pve_procrustes(pred.vertices, gt_vertices),
    }


def sample_errors(
    body, gt_bodies: Callable[[str], object], batch: dict, pred: Prediction, genders: list[str],
    protocol: Protocol = DEFAULT_PROTOCOL,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Per-sample errors (mm) of a prediction against the batch's ground truth under `protocol`."""
    num_joints = protocol.num_joints
    pred_joints = regressed_joints(body, pred.vertices, num_joints)
    has_smpl = batch["has_smpl"].bool()
    keypoints = batch["kp3d"].to(pred.vertices)
    gt_joints, labelled = keypoint_joints(keypoints, num_joints)
    use_mesh = {"keypoints": torch.zeros_like(has_smpl), "mesh": has_smpl, "auto": has_smpl}[
        protocol.ground_truth
    ]
    labelled = labelled & batch["has_kp3d"].bool()[:, None]  # mesh rows are set below; neither -> NaN
    nan = torch.full(has_smpl.shape, float("nan"), dtype=pred.vertices.dtype, device=pred.vertices.device)
    mesh: dict[str, torch.Tensor] = {}
    for gender in sorted(set(genders)):
        rows = [i for i, g in enumerate(genders) if g == gender and bool(has_smpl[i])]
        if not rows:
            continue
        gt_body = gt_bodies(gender)
        gt_betas, gt_pose = batch["betas"][rows].to(pred.vertices), batch["pose"][rows].to(pred.vertices)
        part = Prediction(pred.betas[rows], pred.rotmats[rows], pred.vertices[rows])
        for name, value in mesh_errors(body, gt_body, part, gt_betas, gt_pose).items():
            mesh.setdefault(name, nan.clone())[rows] = value
        mesh_rows = [i for i in rows if bool(use_mesh[i])]
        if mesh_rows:
            with torch.no_grad():
                vertices = gt_body(betas=batch["betas"][mesh_rows].to(pred.vertices),
                                   pose=batch["pose"][mesh_rows].to(pred.vertices)).vertices  # fmt: skip
            gt_joints[mesh_rows] = regressed_joints(gt_body, vertices, num_joints)
            labelled[mesh_rows] = True
    out = {
        "mpjpe": metrics.mpjpe(pred_joints, gt_joints, mask=labelled),
        "pa_mpjpe": metrics.pa_mpjpe(pred_joints, gt_joints, mask=labelled),
    }
    for name in ("pve", "pve_s", "pve_p", "pve_scale_aligned", "pve_procrustes"):
        out[name] = mesh.get(name, nan)
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
        factor = INPUT_SIZE / (BBOX_UNIT * float(meta["scale"]))  # image pixels -> evaluation-crop pixels
        gt = kp2d[i, list(COCO17_TO_SPIN24)].cpu().numpy()
        pred = (pred2d[i, list(COCO17_TO_SPIN24)].detach().cpu().numpy() * (INPUT_SIZE / 2.0)) + pixel_centre(
            INPUT_SIZE
        )
        out.append({"gt": gt, "pred": pred, "area": area * factor**2})
    return out


def mean_prediction(network, batch_size: int) -> Prediction:
    """The network's mean parameters for every sample (the baseline prediction)."""
    rotmats = network.to_rotmats(torch.zeros_like(network.mean_rotation).expand(batch_size, -1, -1))
    betas = network.mean_betas.expand(batch_size, -1)
    with torch.no_grad():
        return Prediction(betas, rotmats, network.body(betas=betas, pose=rotmats).vertices)


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
    protocol: Protocol | None = None,
) -> tuple[dict, list[dict], list[dict]]:
    """Runs the network over `batches`; returns (summary, per-sample records, example predictions).

    `protocol`: the joints and ground truth to score against (default: model.protocols' "auto").
    `ground_truth_maps`: the streams read ground-truth IUV maps at the true joints (DaNet.forward), which
    scores the streams as if the IUV estimator were perfect."""
    body = network.body
    cfg = network.cfg
    protocol = protocol or DEFAULT_PROTOCOL
    records, examples, coco_samples = [], [], []
    network.eval()
    for batch in batches:
        image, targets = batch_to_inputs(batch, cfg.image_size, cfg.feature_size, body, device)
        with torch.no_grad():
            pred = network(image, targets, ground_truth_maps=True) if ground_truth_maps else network(image)
        keys = list(batch["key"])
        genders = [metadata.get(k, {}).get("gender", "n") or "n" for k in keys]
        batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        prediction = Prediction(pred["betas"], pred["rotmats"], pred["vertices"])
        errors = sample_errors(body, gt_bodies, batch, prediction, genders, protocol)
        errors.update(iuv_scores(pred["index_logits"], targets))
        baseline = sample_errors(
            body, gt_bodies, batch, mean_prediction(network, len(keys)), genders, protocol
        )
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
    summary = {
        "protocol": {
            "name": protocol.name, "joints": protocol.num_joints, "ground_truth": protocol.ground_truth,
            "joint_regressor": "h36m17" if "h36m17" in body.regressor_names else "spin24",
            "comparable_with_papers": compares_with_papers(body, protocol),
        },
        **summarise(records),
    }  # fmt: skip
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
