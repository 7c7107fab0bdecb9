"""DaNet: IUV estimator -> joint-centric RoI pooling -> global / local streams -> aggregated refinement.

forward(image (B, 3, S, S), targets=None) -> DaNetOutput: the IUV maps and heatmaps, the RoIs and partial
IUV maps, the streams' inputs, camera, shape and per-stage rotations, and with a body model attached the mesh,
joints and their projections; model/outputs.py lists every key with its shape and when it is present.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.camera import project
from model.config import DaNetConfig
from model.iuv import NUM_I, GroupedPartialHead, IUVEstimator, IUVHeads, iuv_maps, onehot_uvi_maps
from model.outputs import DaNetOutput
from model.partdrop import MapDrop
from model.refine import AggregatedRefinement
from model.roi import JointRoI
from model.rotations import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix
from model.streams import GlobalStream, LocalStreams
from pipeline.body.constants import NUM_BETAS, NUM_JOINTS, PARTIAL_PART_SUBSETS
from pipeline.render.partial import crop_rois, gt_partial_iuv


def default_mean_params() -> dict[str, torch.Tensor]:
    """Mean parameters without a mean-params file: root turned by pi about x (camera y down, SMPL y up), the
    other joints at rest, zero betas, cam (0.9, 0, 0) as in smpl_mean_params.npz."""
    pose = torch.zeros(NUM_JOINTS, 3)
    pose[0, 0] = np.pi
    return {
        "pose": axis_angle_to_matrix(pose),
        "betas": torch.zeros(NUM_BETAS),
        "cam": torch.tensor([0.9, 0.0, 0.0]),
    }


def load_mean_params(path: str) -> dict[str, torch.Tensor]:
    """Read smpl_mean_params.npz (pose (144,) = 24 x 6D, shape (10,), cam (3,))."""
    with np.load(path) as data:
        missing = {"pose", "shape"} - set(data.files)
        if missing:
            raise KeyError(f"{path}: missing arrays {sorted(missing)} (have {data.files})")
        # SPIN's layout: per joint the first two columns of the rotation, stored row-major as a 3 x 2 block
        block = torch.as_tensor(np.asarray(data["pose"], dtype=np.float32)).reshape(NUM_JOINTS, 3, 2)
        pose = rot6d_to_matrix(torch.cat([block[..., 0], block[..., 1]], dim=-1))
        out = {"pose": pose, "betas": torch.as_tensor(np.asarray(data["shape"], np.float32))}
        cam = data["cam"] if "cam" in data.files else np.array([0.9, 0.0, 0.0])
        out["cam"] = torch.as_tensor(np.asarray(cam, dtype=np.float32)).reshape(3)
    return out


def iuv_to_uvi(maps: torch.Tensor, dim: int) -> torch.Tensor:
    """Reorder one-hot maps [I | U | V] -> [U | V | I] along `dim` (3K channels)."""
    i, u, v = maps.chunk(3, dim=dim)
    return torch.cat([u, v, i], dim=dim)


class DaNet(nn.Module):
    """The full network; `cfg.refine.variant == "none"` gives D-Net, `cfg.decompose = False` the global-only
    baseline. See the module doc for outputs."""

    def __init__(self, cfg: DaNetConfig, body: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.iuv = IUVEstimator(cfg.iuv)
        self.roi = JointRoI(cfg.roi)
        parts = 1 + len(PARTIAL_PART_SUBSETS[0]) if cfg.roi.simplified else NUM_I
        self.partial_parts = parts
        if cfg.iuv.partial_head == "grouped":
            self.partial_heads: nn.Module = GroupedPartialHead(self.iuv.out_channels, parts)
        else:
            self.partial_heads = IUVHeads(self.iuv.out_channels, cfg.iuv.head_channels, parts)
        layout = "uvi" if cfg.streams.maps == "onehot" else "iuv"
        self.drop = MapDrop(cfg.drop.kind, cfg.drop.rate, cfg.drop.block_size, cfg.roi.simplified, layout)
        st = cfg.streams
        stem = {"adapter_channels": st.adapter_channels, "stem": st.stem, "stem_channels": st.stem_channels}
        self.rot_dim = 6 if cfg.rotation == "6d" else 9
        outputs = 3 + NUM_BETAS + (0 if cfg.decompose else NUM_JOINTS * self.rot_dim)
        self.global_stream = GlobalStream(st.global_resnet, 3 * NUM_I, outputs, **stem)
        if cfg.decompose:
            c = st.rotation_features
            self.local_streams = LocalStreams(st.local_resnet, 3 * parts, NUM_JOINTS, c, **stem)
            self.refine = AggregatedRefinement(cfg.refine, c, self.rot_dim)
        mean = load_mean_params(cfg.mean_params) if cfg.mean_params else default_mean_params()
        mean_rot = matrix_to_rot6d(mean["pose"]) if self.rot_dim == 6 else mean["pose"].reshape(NUM_JOINTS, 9)
        self.register_buffer("mean_rotation", mean_rot)
        self.register_buffer("mean_betas", mean["betas"])
        self.register_buffer("mean_cam", mean["cam"])
        self.body = body

    def attach_body_model(self, body: nn.Module | None) -> None:
        """Use `body` (pipeline.body.BodyModel or compatible) to output vertices, joints and keypoints."""
        self.body = body

    def to_rotmats(self, raw: torch.Tensor) -> torch.Tensor:
        """Per-joint head output (B, 24, 6 or 9) + mean -> (B, 24, 3, 3)."""
        x = raw + self.mean_rotation
        if self.rot_dim == 6:
            return rot6d_to_matrix(x)
        return x.reshape(*x.shape[:-1], 3, 3).contiguous()

    def place_rois(
        self, out: dict, targets: dict | None, ground_truth: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RoI centres (B, 24, 2) and scales (B, 24) from the predicted (or, optionally in training, or always
        with `ground_truth`, the ground-truth) 2D joints."""
        joints2d = out["joints2d"]
        use_gt = ground_truth or (self.training and self.cfg.roi.gt_centers_in_training)
        if use_gt and targets is not None and "joints2d_smpl" in targets:
            gt2 = targets["joints2d_smpl"].to(joints2d.dtype)
            joints2d = torch.where(gt2[..., 2:3] > 0, gt2[..., :2], joints2d)
        return self.roi(joints2d, F.softmax(out["index_logits"], dim=1))

    def stream_inputs(
        self, out: dict, targets: dict | None = None, ground_truth: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (B, 75, H, W) and partial (B, 24, 3K, r, r) maps in the streams' layout, after the drop:
        softmax [I | U | V] (streams.maps = "softmax") or hard one-hot [U | V | I] ("onehot").

        With cfg.gt_maps_in_training (training only) or `ground_truth`, samples that carry ground-truth IUV
        use it instead."""
        keys = ("index_logits", "u", "v", "partial_index_logits", "partial_u", "partial_v")
        maps = {k: out[k].detach() if self.cfg.detach_maps else out[k] for k in keys}
        onehot = self.cfg.streams.maps == "onehot"
        to_maps = onehot_uvi_maps if onehot else iuv_maps
        global_maps = to_maps(maps["index_logits"], maps["u"], maps["v"])
        partial_maps = to_maps(maps["partial_index_logits"], maps["partial_u"], maps["partial_v"], dim=2)
        use_gt = ground_truth or (self.training and self.cfg.gt_maps_in_training)
        if use_gt and targets is not None and "gt_partial" in out:
            has_iuv = targets.get("has_iuv")
            use = torch.ones(global_maps.shape[0], dtype=torch.bool, device=global_maps.device)
            if has_iuv is not None:
                use = torch.as_tensor(has_iuv, device=global_maps.device).bool().reshape(-1)
            gt_global = targets["iuv"].to(global_maps.dtype)
            gt_partial = out["gt_partial"].to(partial_maps.dtype)
            if onehot:  # the ground truth is [I | U | V]
                gt_global, gt_partial = iuv_to_uvi(gt_global, 1), iuv_to_uvi(gt_partial, 2)
            global_maps = torch.where(use[:, None, None, None], gt_global, global_maps)
            partial_maps = torch.where(use[:, None, None, None, None], gt_partial, partial_maps)
        return self.drop(global_maps, partial_maps)

    def geometry(self, out: dict) -> dict[str, torch.Tensor]:
        """Vertices, joints and projected keypoints from the attached body model."""
        focal, size = self.cfg.loss.focal_length, self.cfg.loss.image_size
        posed = self.body(betas=out["betas"], pose=out["rotmats"])
        geo = {"vertices": posed.vertices, "joints": posed.joints}
        geo["smpl_joints2d"] = project(posed.joints, out["cam"], focal, size)
        if "spin24" in getattr(self.body, "regressor_names", ()):
            geo["keypoints3d"] = self.body.regress(posed.vertices, "spin24")
            geo["keypoints2d"] = project(geo["keypoints3d"], out["cam"], focal, size)
        return geo

    def forward(
        self,
        image: torch.Tensor,
        targets: dict | None = None,
        iuv_only: bool = False,
        ground_truth_maps: bool = False,
    ) -> DaNetOutput:
        """image (B, 3, S, S) normalised -> predictions (module doc). `iuv_only` stops after the global and
        partial IUV maps: the first phase of the paper's schedule trains the IUV estimator alone, and the
        streams must not run (their BatchNorm statistics would drift on untrained maps).
        `ground_truth_maps` (a diagnostic, needs targets with iuv and joints2d_smpl): the streams read the
        ground-truth maps, cropped at the true joints, as from a perfect IUV estimator."""
        cfg = self.cfg
        if ground_truth_maps and (targets is None or "iuv" not in targets or "joints2d_smpl" not in targets):
            raise ValueError("ground_truth_maps needs targets with 'iuv' and 'joints2d_smpl'")
        b = image.shape[0]
        out: DaNetOutput = self.iuv(image)
        centers, scales = self.place_rois(out, targets, ground_truth_maps)
        out["roi_centers"], out["roi_scales"] = centers, scales

        # Joint-centric RoI pooling of the IUV features, then per-joint partial IUV estimation.
        align = cfg.roi.align_corners
        pooled = crop_rois(
            out["features"], centers, scales, cfg.roi.size, align_corners=align
        )  # (B,J,Cf,r,r)
        if cfg.iuv.partial_head == "grouped":
            out.update({f"partial_{k}": v for k, v in self.partial_heads(pooled).items()})
        else:
            ph = self.partial_heads(pooled.flatten(0, 1))
            for key in ("index_logits", "u", "v"):
                out[f"partial_{key}"] = ph[key].reshape(b, NUM_JOINTS, *ph[key].shape[1:])
        if targets is not None and "iuv" in targets:
            gt = targets["iuv"].to(image.dtype)
            out["gt_partial"] = gt_partial_iuv(
                gt, centers.detach(), scales.detach(), cfg.roi.size, cfg.roi.simplified, align
            )
        if iuv_only:
            return out

        global_maps, partial_maps = self.stream_inputs(out, targets, ground_truth_maps)
        out["global_maps"], out["partial_maps"] = global_maps, partial_maps
        params = self.global_stream(global_maps)
        out["cam"] = self.mean_cam + params[:, :3]
        out["betas"] = self.mean_betas + params[:, 3 : 3 + NUM_BETAS]
        if cfg.decompose:
            refined = self.refine(self.local_streams(partial_maps))
            rotations, out["positions"] = refined["rotations"], refined["positions"]
        else:  # the baseline: every rotation from the global stream
            rotations, out["positions"] = [params[:, 3 + NUM_BETAS :].reshape(b, NUM_JOINTS, -1)], []
        out["rotmats_stages"] = [self.to_rotmats(r) for r in rotations]
        out["rotmats"] = out["rotmats_stages"][-1]
        if self.body is not None:
            out.update(self.geometry(out))
        return out
