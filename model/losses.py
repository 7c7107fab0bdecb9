"""DaNet's losses: L_inter (IUV maps, joints), L_target (SMPL parameters and geometry), L_refine.

Targets (all optional; a term is computed only when its labels are there, and per-sample masks restrict each
term to the samples that carry its labels):
  iuv (B, 75, H, W) one-hot ground-truth IUV at the predicted maps' size, with has_iuv (B,) bool;
  joints2d_smpl (B, 24, 3) SMPL joints in the map's normalised coordinates [-1, 1] + visibility;
  pose (B, 72) axis-angle or (B, 24, 3, 3), betas (B, 10), with has_smpl (B,) bool;
  kp3d (B, 24, 4) SPIN24 keypoints in metres + confidence, with has_kp3d (B,) bool;
  kp2d (B, 24, 3) SPIN24 keypoints in crop coordinates [-1, 1] + visibility;
  smpl_joints / smpl_vertices: ground-truth body geometry, else derived from pose/betas with the body model.
Each term is reduced as its LossConfig option says (cfg.loss.*_form, keypoint_mean): either this project's
means over the samples and pixels/joints a term covers (the tiny preset and the demo), or the authors'
trainer's definitions (the paper preset; HongwenZhang/DaNet-DensePose2SMPL, see docs/reference-losses.md),
then multiplied by its weight in LossConfig.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.rotations import axis_angle_to_matrix, orthogonality_error
from pipeline.body.constants import NUM_PARTS, PART_TO_COARSE

NUM_I = NUM_PARTS + 1
SPIN24_HIPS = (2, 3)  # right_hip, left_hip: the pelvis of SPIN24 keypoints
# SPIN's 2D keypoint tensor has 49 rows: 25 OpenPose joints (weight 0 in the authors' training,
# openpose_train_weight=0) and the 24 ground-truth joints we keep; their 2D term is a mean over all 49 x 2.
SPIN49_ROWS = 49


def _mask(targets: dict, key: str, batch: int, device) -> torch.Tensor:
    m = targets.get(key)
    if m is None:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return torch.as_tensor(m, device=device).bool().reshape(batch)


def masked_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) values, (B,) bool -> mean over the masked samples (0 with gradient path if none)."""
    m = mask.to(per_sample.dtype)
    return (per_sample * m).sum() / m.sum().clamp_min(1.0)


def weighted_mean(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, ...) errors, (B, ...) non-negative weights -> (B,) weighted means (0 where the weights are 0)."""
    dims = tuple(range(1, err.dim()))
    return (err * weight).sum(dims) / weight.sum(dims).clamp_min(1e-6)


def batch_sum(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) values, (B,) bool -> sum over the masked samples / B (all of them, as the authors' losses divide a
    sum by the batch size whatever share of it carries the labels)."""
    return (per_sample * mask.to(per_sample.dtype)).sum() / per_sample.shape[0]


def smooth_l1(diff: torch.Tensor) -> torch.Tensor:
    """Elementwise smooth-L1 with beta 1 (torch's default, the authors' choice): 0.5 d^2 below 1, |d| - 0.5."""
    return F.smooth_l1_loss(diff, torch.zeros_like(diff), reduction="none")


def index_ce(logits: torch.Tensor, labels: torch.Tensor, foreground_weight: float = 1.0) -> torch.Tensor:
    """(B, K, ...) logits, (B, ...) int64 -> (B,) per-sample weighted mean cross-entropy.

    Pixels of a body part (label > 0) weigh `foreground_weight` times a background pixel; 1 is the plain
    mean. A person covers ~15 % of a crop, so with the plain mean the background dominates the gradient and a
    network trained from scratch learns the parts slowly."""
    ce = F.cross_entropy(logits, labels, reduction="none").flatten(1)
    if foreground_weight == 1.0:
        return ce.mean(1)
    return weighted_mean(ce, 1.0 + (foreground_weight - 1.0) * (labels.flatten(1) > 0).to(ce.dtype))


def uv_l1(pred_u: torch.Tensor, gt_u: torch.Tensor, gt_onehot: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """L1 of U (or V) on the ground-truth part's channel of every foreground pixel: (B,) per sample.

    pred_u, gt_u, gt_onehot: (B, ..., K, ...) with the part axis at `dim`; background channel 0 is ignored.
    """
    fg = gt_onehot.clone()
    fg.narrow(dim, 0, 1).zero_()
    return weighted_mean((pred_u - gt_u).abs(), fg)


def uv_smooth_l1_sum(pred_u: torch.Tensor, gt_u: torch.Tensor, gt_onehot: torch.Tensor) -> torch.Tensor:
    """The authors' U (or V) term for rendered maps, per sample (B,): smooth-L1 summed over every pixel's
    ground-truth channel, the background channel 0 included (there the target is 0). Shapes as uv_l1."""
    on = (gt_onehot > 0).to(pred_u.dtype)
    return (smooth_l1(pred_u - gt_u) * on).flatten(1).sum(1)


def iuv_terms(
    index_logits,
    u,
    v,
    gt: torch.Tensor,
    dim: int = 1,
    foreground_weight: float = 1.0,
    uv_form: str = "l1_mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (B,) index cross-entropy and U+V error of predicted maps against one-hot-layout ground truth.

    index_logits, u, v: (B, ..., K, h, w) with the part axis at `dim`; gt: same with 3K channels there.
    uv_form: "l1_mean" (uv_l1) or "smooth_l1_sum" (uv_smooth_l1_sum), see LossConfig.uv_form.
    """
    k = index_logits.shape[dim]
    gt_i, gt_u, gt_v = gt.narrow(dim, 0, k), gt.narrow(dim, k, k), gt.narrow(dim, 2 * k, k)
    ce = index_ce(index_logits.movedim(dim, 1), gt_i.argmax(dim), foreground_weight)
    if uv_form == "smooth_l1_sum":
        return ce, uv_smooth_l1_sum(u, gt_u, gt_i) + uv_smooth_l1_sum(v, gt_v, gt_i)
    return ce, uv_l1(u, gt_u, gt_i, dim) + uv_l1(v, gt_v, gt_i, dim)


def to_rotmats(pose: torch.Tensor) -> torch.Tensor:
    """(B, 72) axis-angle or (B, 24, 3, 3) -> (B, 24, 3, 3)."""
    if pose.dim() == 2:
        return axis_angle_to_matrix(pose.reshape(pose.shape[0], -1, 3))
    return pose


def inter_losses(pred: dict, targets: dict, loss) -> dict[str, torch.Tensor]:
    """L_inter: global IUV (index CE, coarse CE, U/V), partial IUV, and the soft-argmax joints (RoI centres).

    `loss`: the LossConfig (index_foreground_weight, uv_form, joints2d_form)."""
    if isinstance(loss, int | float):
        raise TypeError("inter_losses takes the LossConfig (cfg.loss), not a bare foreground weight")
    out: dict[str, torch.Tensor] = {}
    b = pred["index_logits"].shape[0]
    dev = pred["index_logits"].device
    fg_weight, uv_form = loss.index_foreground_weight, loss.uv_form
    # The authors divide a summed U/V error by the batch size; a mean is averaged over the labelled samples.
    reduce_uv = batch_sum if uv_form == "smooth_l1_sum" else masked_mean
    if "iuv" in targets:
        gt = targets["iuv"].to(pred["index_logits"].dtype)
        has_iuv = _mask(targets, "has_iuv", b, dev)
        ce, uv = iuv_terms(pred["index_logits"], pred["u"], pred["v"], gt, 1, fg_weight, uv_form)
        out["part_index"], out["uv"] = masked_mean(ce, has_iuv), reduce_uv(uv, has_iuv)
        coarse = torch.tensor(PART_TO_COARSE, device=dev)[gt[:, :NUM_I].argmax(1)]
        coarse_ce = index_ce(pred["coarse_logits"], coarse, fg_weight)
        out["coarse_index"] = masked_mean(coarse_ce, has_iuv)
        if "gt_partial" in pred:
            ce, uv = iuv_terms(
                pred["partial_index_logits"],
                pred["partial_u"],
                pred["partial_v"],
                pred["gt_partial"].to(gt.dtype),
                2,
                fg_weight,
                uv_form,
            )
            if uv_form == "smooth_l1_sum":  # the authors average the per-joint sums over the joints
                uv = uv / pred["partial_u"].shape[1]
            out["partial_index"], out["partial_uv"] = masked_mean(ce, has_iuv), reduce_uv(uv, has_iuv)
    if "joints2d_smpl" in targets:
        gt2 = targets["joints2d_smpl"].to(pred["joints2d"].dtype)
        diff, vis = pred["joints2d"] - gt2[..., :2], gt2[..., 2]
        if loss.joints2d_form == "smooth_l1_sum":
            out["joints2d"] = (smooth_l1(diff).sum(-1) * vis).sum() / b
        else:
            out["joints2d"] = masked_mean(weighted_mean(diff.abs().sum(-1), vis), vis.sum(-1) > 0)
    from model.point_losses import point_losses  # here: that module builds on this one's helpers

    out.update(point_losses(pred, targets, loss))  # DensePose-COCO points and coarse masks, where labelled
    return out


def target_losses(pred: dict, targets: dict, cfg, body=None) -> dict[str, torch.Tensor]:
    """L_target: pose/betas, orthogonality, vertices, 3D and reprojected 2D keypoints, positive camera scale;
    L_refine: rotation supervision of the intermediate stage and position supervision of Y, Y^."""
    out: dict[str, torch.Tensor] = {}
    loss = cfg.loss
    rot = pred["rotmats"]
    b, dev = rot.shape[0], rot.device
    if cfg.rotation == "matrix":
        out["orthogonality"] = torch.stack(
            [orthogonality_error(r).mean() for r in pred["rotmats_stages"]]
        ).mean()
    has_smpl = _mask(targets, "has_smpl", b, dev)
    gt_rot = None
    if "pose" in targets:
        gt_rot = to_rotmats(targets["pose"].to(rot.dtype))
        out["pose"] = masked_mean(((rot - gt_rot) ** 2).flatten(1).mean(1), has_smpl)
        if len(pred["rotmats_stages"]) > 1:
            first = pred["rotmats_stages"][0]
            out["refine_rotation"] = masked_mean(((first - gt_rot) ** 2).flatten(1).mean(1), has_smpl)
    if "betas" in targets:
        out["betas"] = masked_mean(((pred["betas"] - targets["betas"]) ** 2).mean(1), has_smpl)
    gt_geom = _gt_geometry(targets, body)
    if pred.get("positions") and "smpl_joints" in gt_geom:
        gj = gt_geom["smpl_joints"]
        if loss.refine_position_frame == "pelvis":
            gj = gj - gj[:, :1]
        if loss.refine_position_form == "l1_sum":
            per_stage = [masked_mean((p - gj).abs().flatten(1).sum(1), has_smpl) for p in pred["positions"]]
            out["refine_position"] = torch.stack(per_stage).sum()
        else:
            err = torch.stack([((p - gj) ** 2).sum(-1).mean(-1) for p in pred["positions"]]).mean(0)
            out["refine_position"] = masked_mean(err, has_smpl)
    if "vertices" in pred and "smpl_vertices" in gt_geom:
        out["vertices"] = masked_mean(
            (pred["vertices"] - gt_geom["smpl_vertices"]).abs().sum(-1).mean(-1), has_smpl
        )
    all_entries = loss.keypoint_mean == "all_entries"
    if "keypoints3d" in pred and "kp3d" in targets:
        gt3 = targets["kp3d"].to(rot.dtype)
        p3 = pred["keypoints3d"]
        p3 = p3 - p3[:, SPIN24_HIPS].mean(1, keepdim=True)
        g3 = gt3[..., :3] - gt3[:, SPIN24_HIPS, :3].mean(1, keepdim=True)
        if loss.kp3d_frame == "body" and gt_rot is not None:
            # no SMPL fit, no true root: both turn by the predicted one, which leaves the camera-frame error
            gt_root = torch.where(has_smpl[:, None, None], gt_rot[:, 0], rot[:, 0])
            p3, g3 = to_root_frame(p3, rot[:, 0]), to_root_frame(g3, gt_root)
        sq = ((p3 - g3) ** 2).sum(-1)
        if all_entries:  # confidence-weighted mean over every joint and coordinate
            err = (sq * gt3[..., 3]).sum(-1) / (3 * sq.shape[1])
        else:
            err = weighted_mean(sq, gt3[..., 3])
        out["kp3d"] = masked_mean(err, _mask(targets, "has_kp3d", b, dev))
    if "keypoints2d" in pred and "kp2d" in targets:
        gt2 = targets["kp2d"].to(rot.dtype)
        sq = ((pred["keypoints2d"] - gt2[..., :2]) ** 2).sum(-1)
        if all_entries:  # mean over all samples and SPIN's 49 rows x 2 (the 25 OpenPose rows weigh 0)
            out["kp2d"] = (sq * gt2[..., 2]).sum() / (b * SPIN49_ROWS * 2)
        else:
            out["kp2d"] = masked_mean(weighted_mean(sq, gt2[..., 2]), gt2[..., 2].sum(-1) > 0)
    if loss.cam_positive > 0:
        out["cam_positive"] = torch.exp(-10.0 * pred["cam"][:, 0]).pow(2).mean()
    return out


def to_root_frame(points: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) pelvis-relative points, (B, 3, 3) root rotations -> the points in the root's axes (R^T p)."""
    return points @ root


def _gt_geometry(targets: dict, body) -> dict[str, torch.Tensor]:
    """Ground-truth SMPL joints/vertices from the targets, or posed with the body model from pose/betas."""
    geom = {k: targets[k] for k in ("smpl_joints", "smpl_vertices") if k in targets}
    if len(geom) < 2 and body is not None and "pose" in targets and "betas" in targets:
        with torch.no_grad():
            posed = body(betas=targets["betas"], pose=to_rotmats(targets["pose"]))
        geom.setdefault("smpl_joints", posed.joints)
        geom.setdefault("smpl_vertices", posed.vertices)
    return geom


# L_inter: the IUV estimator's own terms; trained alone during the first steps of the paper's schedule.
INTER_TERMS = ("part_index", "coarse_index", "uv", "partial_index", "partial_uv", "joints2d",
               "dp_part_index", "dp_uv", "dp_coarse_index")  # fmt: skip


def loss_weights(cfg) -> dict[str, float]:
    """Weight of every loss term, from cfg.loss; partial IUV terms are weighted by roi * part_index / uv."""
    w = cfg.loss
    return {
        "part_index": w.part_index, "coarse_index": w.coarse_index, "uv": w.uv,
        "partial_index": w.roi * w.part_index, "partial_uv": w.roi * w.uv, "joints2d": w.joints2d,
        "pose": w.pose, "betas": w.betas, "orthogonality": w.orthogonality, "vertices": w.vertices,
        "kp3d": w.kp3d, "kp2d": w.kp2d, "refine_rotation": w.refine_rotation,
        "refine_position": w.refine_position, "cam_positive": w.cam_positive,
        "dp_part_index": w.dp_part_index, "dp_uv": w.dp_uv, "dp_coarse_index": w.dp_coarse_index,
    }  # fmt: skip


def weighted_total(terms: dict[str, torch.Tensor], cfg, only: tuple[str, ...] | None = None) -> torch.Tensor:
    """Sum of weight * term over `terms` (restricted to the names in `only` when given)."""
    weights = loss_weights(cfg)
    parts = [weights[k] * v for k, v in terms.items() if k in weights and (only is None or k in only)]
    if not parts:
        raise ValueError("no loss term to optimise: the batch carries none of the labels the terms need")
    return torch.stack(parts).sum()


def danet_losses(pred: dict, targets: dict, cfg, body=None) -> dict[str, torch.Tensor]:
    """All loss terms (unweighted) plus "total" = sum of weight * term (see loss_weights)."""
    terms = inter_losses(pred, targets, cfg.loss)
    terms.update(target_losses(pred, targets, cfg, body))
    terms["total"] = weighted_total(terms, cfg) if terms else pred["cam"].sum() * 0.0
    return terms
