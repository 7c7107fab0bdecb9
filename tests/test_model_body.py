"""DaNet with the project's body model (pipeline.body): geometry outputs, losses, mean pose upright."""

from __future__ import annotations

import pytest
import torch

from model.camera import project
from model.config import tiny_config
from model.danet import DaNet, default_mean_params
from model.losses import danet_losses
from tests.model_fakes import synthetic_batch

body_mod = pytest.importorskip("pipeline.body")


@pytest.fixture(scope="module")
def body():
    return body_mod.load_body_model("anny-smpl24")


def test_mean_parameters_project_an_upright_person_inside_the_crop(body):
    mean = default_mean_params()
    out = body(betas=mean["betas"][None], pose=mean["pose"][None])
    xy = project(out.joints, mean["cam"][None])[0]
    head, pelvis, ankles = xy[15], xy[0], xy[[7, 8]]
    assert head[1] < pelvis[1] < ankles[:, 1].min()  # image y grows downwards
    assert xy.abs().max() < 1  # the whole skeleton inside the crop


def test_danet_with_the_body_model_outputs_geometry_and_target_losses(body):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = DaNet(cfg, body).train()
    image, targets = synthetic_batch(2, cfg.image_size)
    out = model(image, targets)
    assert out["vertices"].shape == (2, body.num_vertices, 3)
    assert out["joints"].shape == (2, 24, 3) and out["keypoints2d"].shape == (2, 24, 2)
    losses = danet_losses(out, targets, cfg, body)
    assert {"refine_position", "kp3d", "kp2d", "pose", "betas"} <= set(losses)
    losses["total"].backward()
    assert model.global_stream.resnet.fc.weight.grad.abs().sum() > 0
