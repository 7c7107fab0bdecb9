"""bench/pose_prior.py: the template-classifier bound it reports for the synthetic pose prior."""

from __future__ import annotations

import json

import numpy as np

from bench.pose_prior import JOINT_GROUPS, main, template_poses
from pipeline.synth.poses import TEMPLATES


def test_template_poses_are_the_noise_free_templates_and_their_mirrors():
    plain, mirrored = template_poses(["reaching_across", "t_pose"])
    assert np.allclose(plain[0, 16], TEMPLATES["reaching_across"][16])  # left shoulder as in the table
    assert np.allclose(mirrored[0, 17], plain[0, 16] * [1, -1, -1])  # mirrored onto the right shoulder
    assert not plain[1].any() and not mirrored[1].any()  # the T-pose is all zeros and its own mirror


def test_report_bounds_the_template_classifier_below_the_mean_pose(capsys):
    assert main(["--samples", "40", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 < report["template_classifier_pa_mpjpe"] < report["mean_pose_pa_mpjpe"]
    ratio = report["template_classifier_pa_mpjpe"] / report["mean_pose_pa_mpjpe"]
    assert abs(report["template_classifier_ratio_to_mean_pose"] - ratio) < 1e-3
    assert set(report["noise_of_one_group_pa_mpjpe"]) == set(JOINT_GROUPS)
    assert (
        report["noise_of_one_group_pa_mpjpe"]["hips"] > report["noise_of_one_group_pa_mpjpe"]["ankles_feet"]
    )
