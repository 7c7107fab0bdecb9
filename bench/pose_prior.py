"""How much of the synthetic set's pose variation a model must regress, not just classify.

    python -m bench.pose_prior [--samples 400] [--seed 1] [--mean-params data/raw/synth/mean_params.npz]

Draws poses from the synthetic set's prior (pipeline.synth.poses: nine activity templates, per-joint noise,
mirroring) and scores, with the evaluation protocol's PA-MPJPE on the LSP-14 joints of the default body
(mean shape for every pose, so shape plays no part):
  - the mean pose (the demo's baseline; its mean parameters file when given, else the prior's own mean);
  - a perfect template classifier: each pose's noise-free template, mirrored the better way;
  - how much each joint group's noise alone adds to a noise-free template.
The classifier's ratio to the mean pose bounds what recognising the activity can buy; the rest of the error
is per-joint variation. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.evaluation import protocol_joints  # noqa: E402
from model.metrics import pa_mpjpe  # noqa: E402
from model.rotations import axis_angle_to_matrix  # noqa: E402
from pipeline.body.constants import NUM_BETAS  # noqa: E402
from pipeline.synth.mean_params import chordal_mean  # noqa: E402
from pipeline.synth.poses import (  # noqa: E402
    LIMITS_HIGH,
    LIMITS_LOW,
    euler_to_axis_angle,
    mirror_euler,
    sample_body_poses,
    template_euler,
)

JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "spine": (3, 6, 9), "neck_head": (12, 15), "collars": (13, 14), "shoulders": (16, 17),
    "elbows": (18, 19), "wrists_hands": (20, 21, 22, 23), "hips": (1, 2), "knees": (4, 5),
    "ankles_feet": (7, 8, 10, 11),
}  # fmt: skip


def template_poses(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free (N, 24, 3) Euler poses of the named templates, as drawn and mirrored, clipped to limits."""
    euler = template_euler(names)
    return np.clip(euler, LIMITS_LOW, LIMITS_HIGH), np.clip(mirror_euler(euler), LIMITS_LOW, LIMITS_HIGH)


def pose_prior_figures(samples: int, seed: int, mean_params: str | None = None) -> dict:
    from model.danet import load_mean_params
    from pipeline.body import load_body_model

    body = load_body_model("anny-smpl24")
    euler, names = sample_body_poses(np.random.default_rng(seed), samples)
    betas = torch.zeros(samples, NUM_BETAS)

    def joints(rotmats: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return protocol_joints(body, body(betas=betas, pose=rotmats).vertices)

    def joints_of(e: np.ndarray) -> torch.Tensor:
        return joints(axis_angle_to_matrix(torch.tensor(euler_to_axis_angle(e), dtype=torch.float32)))

    truth = joints_of(euler)
    if mean_params:
        mean_rot = load_mean_params(mean_params)["pose"].float().clone()
        mean_rot[0] = torch.eye(3)  # PA-MPJPE ignores the root; keep it in the prior's frame
    else:
        rotations = Rotation.from_euler("XYZ", euler.reshape(-1, 3)).as_matrix().reshape(samples, -1, 3, 3)
        per_joint = [chordal_mean(rotations[:, j]) for j in range(rotations.shape[1])]
        mean_rot = torch.tensor(np.stack(per_joint), dtype=torch.float32)
    mean_error = pa_mpjpe(joints(mean_rot.expand(samples, -1, -1, -1)), truth)

    plain, mirrored = template_poses(names)
    plain_error, mirrored_error = pa_mpjpe(joints_of(plain), truth), pa_mpjpe(joints_of(mirrored), truth)
    classifier_error = torch.minimum(plain_error, mirrored_error)
    template = np.where((plain_error <= mirrored_error).numpy()[:, None, None], plain, mirrored)
    template_joints = joints_of(template)
    groups = {}
    for group, members in JOINT_GROUPS.items():
        noisy = template.copy()
        noisy[:, list(members)] = euler[:, list(members)]
        groups[group] = round(float(pa_mpjpe(joints_of(noisy), template_joints).mean()), 1)
    mean_mm, classifier_mm = float(mean_error.mean()), float(classifier_error.mean())
    return {
        "samples": samples,
        "seed": seed,
        "mean_pose_pa_mpjpe": round(mean_mm, 1),
        "template_classifier_pa_mpjpe": round(classifier_mm, 1),
        "template_classifier_ratio_to_mean_pose": round(classifier_mm / mean_mm, 3),
        "noise_of_one_group_pa_mpjpe": groups,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=400, help="poses drawn from the prior")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--mean-params", default=None, help="mean_params.npz of the baseline (default: the prior's)"
    )
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be >= 1")
    print(json.dumps(pose_prior_figures(args.samples, args.seed, args.mean_params)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
