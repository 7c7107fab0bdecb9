"""The typed output of DaNet.forward: every key, its shape, and when it is present.

At run time the output is a plain dict (losses, evaluation and predict index it by name); this TypedDict
documents it in one place and lets a type checker catch a misspelt key. Shapes for a batch of B images of
side S: maps are h = w = S / 4 (the IUV features' resolution), RoIs r = cfg.roi.size, K = 7 partial parts
(1 background + 6, ``roi.simplified``) or 25. Coordinates ``[-1, 1]`` are the crop's normalised
coordinates (pipeline.conventions: x = (pixel - (S - 1) / 2) / (S / 2)).

Presence, from the flags of forward and the model:

* ``IUV_KEYS``: always;
* ``gt_partial``: when ``targets`` has ``"iuv"``;
* ``STREAM_KEYS``: unless ``iuv_only`` (``positions`` is an empty list for the global-only baseline,
  ``cfg.decompose = False``, and one entry per refinement stage with ``refine.variant = "position_aided"``);
* ``BODY_KEYS``: with a body model attached (not ``iuv_only``); ``SPIN24_KEYS`` also need the body's
  ``"spin24"`` regressor.
"""

from __future__ import annotations

from typing import TypedDict

import torch


class DaNetOutput(TypedDict, total=False):
    """DaNet.forward's predictions (see the module doc for when each key is present)."""

    features: torch.Tensor  # (B, Cf, h, w) the IUV estimator's features, pooled by the RoIs
    index_logits: torch.Tensor  # (B, 25, h, w) part-index logits (I: background + 24 DensePose parts)
    u: torch.Tensor  # (B, 25, h, w) U per part channel (raw regression output; targets in [0, 1])
    v: torch.Tensor  # (B, 25, h, w) V per part channel (raw regression output)
    coarse_logits: torch.Tensor  # (B, 15, h, w) coarse (segment) index logits
    heatmaps: torch.Tensor  # (B, 24, h, w) SMPL joint heatmaps
    joints2d: torch.Tensor  # (B, 24, 2) soft-argmax of the heatmaps, [-1, 1]
    roi_centers: torch.Tensor  # (B, 24, 2) RoI centres, [-1, 1]
    roi_scales: torch.Tensor  # (B, 24) RoI sides, as a fraction of the map side
    partial_index_logits: torch.Tensor  # (B, 24, K, r, r) per-joint partial part-index logits
    partial_u: torch.Tensor  # (B, 24, K, r, r)
    partial_v: torch.Tensor  # (B, 24, K, r, r)
    gt_partial: torch.Tensor  # (B, 24, 3K, r, r) ground-truth partial IUV [I | U | V] cut at the same RoIs
    global_maps: torch.Tensor  # (B, 75, h, w) the global stream's input, after PartDrop in training
    partial_maps: torch.Tensor  # (B, 24, 3K, r, r) the local streams' input, after PartDrop in training
    cam: torch.Tensor  # (B, 3) weak-perspective (s, tx, ty) of the crop camera
    betas: torch.Tensor  # (B, 10) SMPL shape
    positions: list[torch.Tensor]  # per refinement stage (B, 24, 3) pelvis-relative joint positions, metres
    rotmats_stages: list[torch.Tensor]  # per refinement stage (B, 24, 3, 3) joint rotations
    rotmats: torch.Tensor  # (B, 24, 3, 3) the last stage's rotations (SMPL pose)
    vertices: torch.Tensor  # (B, V, 3) posed mesh, metres, body frame in camera axes
    joints: torch.Tensor  # (B, 24, 3) SMPL joints, metres
    smpl_joints2d: torch.Tensor  # (B, 24, 2) SMPL joints through the crop camera, [-1, 1]
    keypoints3d: torch.Tensor  # (B, 24, 3) SPIN-24 keypoints, metres
    keypoints2d: torch.Tensor  # (B, 24, 2) SPIN-24 keypoints through the crop camera, [-1, 1]


IUV_KEYS = frozenset(
    {"features", "index_logits", "u", "v", "coarse_logits", "heatmaps", "joints2d", "roi_centers",
     "roi_scales", "partial_index_logits", "partial_u", "partial_v"}
)  # fmt: skip
STREAM_KEYS = frozenset(
    {"global_maps", "partial_maps", "cam", "betas", "positions", "rotmats_stages", "rotmats"}
)
BODY_KEYS = frozenset({"vertices", "joints", "smpl_joints2d"})
SPIN24_KEYS = frozenset({"keypoints3d", "keypoints2d"})
