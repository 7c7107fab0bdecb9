"""Each ablation switch of the paper's Section 5.4 (model.config.ABLATIONS) changes what it names, on the tiny
network: the checks below are written from what the switch means (which modules exist, where the rotations
come from, what a drop removes, what sets a RoI's scale), with hand-computed expected values, never from the
model's own submodules' outputs. `test_each_check_fails_without_its_switch` runs every check on the network
without the switch: a check that passed there would not be testing its switch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch import nn

from model.config import ABLATIONS, DaNetConfig, ablation, tiny_config
from model.danet import DaNet
from model.losses import danet_losses
from pipeline.body.constants import PARTIAL_PART_SUBSETS, SMPL_PARENTS
from tests.model_fakes import FakeBody, consistent_batch, synthetic_batch

BATCH, SIZE = 2, 64  # the tiny preset's input; its IUV maps are 16 x 16, its partial maps 8 x 8


def build(cfg: DaNetConfig, seed: int = 0) -> tuple[DaNet, FakeBody]:
    torch.manual_seed(seed)
    body = FakeBody()
    return DaNet(cfg, body), body


def train_forward(model: DaNet, body: FakeBody, seed: int = 1) -> tuple[dict, dict]:
    """A training-mode forward on a fixed batch, the RNG (RoI jitter, drops) seeded."""
    image, targets = consistent_batch(body, BATCH, SIZE)
    torch.manual_seed(seed)
    model.train()
    return model(image, targets), targets


def eval_forward(model: DaNet) -> dict:
    image, _ = synthetic_batch(BATCH, SIZE)
    model.eval()
    with torch.no_grad():
        return model(image)


def hand_mean_rotations() -> torch.Tensor:
    """The network's starting pose without a mean-params file: the root turned by pi about x (diag(1, -1,
    -1)), every other joint at rest."""
    rotations = torch.eye(3).repeat(BATCH, 24, 1, 1)
    rotations[:, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    return rotations


# A 6D offset that turns the rest rotation's 6D code [1, 0, 0, 0, 1, 0] into [0, 1, 0, -1, 0, 0]: whichever
# way the two 3-vectors are read (columns or rows), that is a quarter turn about z: R[2, 2] = 1, trace 1.
QUARTER_TURN_OFFSET = torch.tensor([-1.0, 1.0, 0.0, -1.0, -1.0, 0.0])
PROBE_JOINT = 3


def assert_quarter_turn_about_z(rotation: torch.Tensor) -> None:
    assert torch.allclose(rotation[..., 2, 2], torch.ones(())), rotation
    assert torch.allclose(rotation.diagonal(dim1=-2, dim2=-1).sum(-1), torch.ones(())), rotation


def set_head(head: nn.Module, offset: torch.Tensor, joint: int) -> None:
    """A per-joint rotation head (weight (24, C, 6), bias (24, 6)) that outputs 0 except `offset` at `joint`,
    whatever its input."""
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[joint] = offset


def assert_rotations_from(out: dict) -> None:
    """Final rotations: the hand mean everywhere but PROBE_JOINT, a quarter turn about z there."""
    expected = hand_mean_rotations()
    keep = [j for j in range(24) if j != PROBE_JOINT]
    torch.testing.assert_close(out["rotmats"][:, keep], expected[:, keep], atol=1e-6, rtol=0)
    assert_quarter_turn_about_z(out["rotmats"][:, PROBE_JOINT])


def refine_submodules(model: DaNet) -> set[str]:
    return {n.split(".")[1] for n, _ in model.named_parameters() if n.startswith("refine.")}


def last_linear(module: nn.Module) -> nn.Linear:
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


# -- where the rotations come from ---------------------------------------------------------------------------


def check_global_only(cfg: DaNetConfig) -> None:
    model, _ = build(cfg)
    assert not [n for n, _ in model.named_parameters() if n.startswith(("local_streams.", "refine."))]
    fc = last_linear(model.global_stream)
    assert fc.out_features == 3 + 10 + 24 * 6  # camera, shape and every joint's 6D rotation
    with torch.no_grad():  # a global stream that outputs zero offsets except one joint's rotation
        fc.weight.zero_()
        fc.bias.zero_()
        start = 13 + 6 * PROBE_JOINT
        fc.bias[start : start + 6] = QUARTER_TURN_OFFSET
    out = eval_forward(model)
    assert len(out["rotmats_stages"]) == 1 and out["positions"] == []
    assert_rotations_from(out)
    torch.testing.assert_close(out["cam"], torch.tensor([[0.9, 0.0, 0.0]] * BATCH))
    torch.testing.assert_close(out["betas"], torch.zeros(BATCH, 10))


def check_dnet(cfg: DaNetConfig) -> None:
    model, _ = build(cfg)
    assert refine_submodules(model) == {"rot_heads"} and len(model.refine.rot_heads) == 1
    set_head(model.refine.rot_heads[0], QUARTER_TURN_OFFSET, PROBE_JOINT)  # the local streams' only head
    with torch.no_grad():  # the global stream's output does not reach the rotations
        last_linear(model.global_stream).bias.add_(0.5)
    out = eval_forward(model)
    assert len(out["rotmats_stages"]) == 1 and out["positions"] == []
    assert_rotations_from(out)


# refinement variant -> the refinement submodules it has (Section 4.3) and whether positions come out
REFINE_MODULES = {
    "direct": ({"rot_heads", "refine"}, False),
    "position_implicit": ({"rot_heads", "rot_to_pos", "refine", "pos_to_rot"}, False),
    "position_aided": ({"rot_heads", "rot_to_pos", "refine", "pos_to_rot", "pos_heads"}, True),
}


def check_refine(variant: str) -> Callable[[DaNetConfig], None]:
    def check(cfg: DaNetConfig) -> None:
        modules, has_positions = REFINE_MODULES[variant]
        model, _ = build(cfg)
        assert refine_submodules(model) == modules
        out = eval_forward(model)
        assert len(out["rotmats_stages"]) == 2
        if has_positions:
            assert [p.shape for p in out["positions"]] == [(BATCH, 24, 3)] * 2
        else:
            assert out["positions"] == []
        # the refined head decides the final rotations; the first head only the intermediate stage
        set_head(model.refine.rot_heads[1], QUARTER_TURN_OFFSET, PROBE_JOINT)
        with torch.no_grad():
            model.refine.rot_heads[0].bias.add_(0.5)
        out = eval_forward(model)
        assert_rotations_from(out)
        assert not torch.allclose(out["rotmats_stages"][0], out["rotmats"], atol=1e-3)

    return check


def check_fixed_edges(cfg: DaNetConfig) -> None:
    model, body = build(cfg)
    assert not [n for n, _ in model.named_parameters() if "edges" in n]
    graph = model.refine.refine
    # the pelvis row of the row-normalised graph: itself, its children 1, 2, 3 and theirs 4, 5, 6
    pelvis_row = torch.zeros(24)
    pelvis_row[:7] = 1 / 7
    assert SMPL_PARENTS[1:7] == (0, 0, 0, 1, 2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    out, targets = train_forward(model, body)
    danet_losses(out, targets, cfg, body)["total"].backward()
    optimizer.step()  # a training step leaves the graph as it was
    for layer in graph.layers:
        torch.testing.assert_close(layer.matrix(graph.edges)[0], pelvis_row)


# -- what the drops remove --------------------------------------------------------------------------------------


def maps_with_and_without_drop(cfg: DaNetConfig) -> tuple[torch.Tensor, ...]:
    """(global, partial) maps of a training forward with cfg's drop, then the same network and batch without
    any drop: the maps the drop started from."""
    model, body = build(cfg)
    out, _ = train_forward(model, body)
    plain_cfg = dataclasses.replace(cfg, drop=dataclasses.replace(cfg.drop, kind="none"))
    plain, _ = build(plain_cfg)
    ref, _ = train_forward(plain, body)
    return out["global_maps"], ref["global_maps"], out["partial_maps"], ref["partial_maps"]


def check_no_drop(cfg: DaNetConfig) -> None:
    model, body = build(cfg)
    out, _ = train_forward(model, body)
    # nothing removed in training: every pixel's part probabilities (the I block) still sum to 1
    k = out["partial_maps"].shape[2] // 3
    torch.testing.assert_close(out["global_maps"][:, :25].sum(1), torch.ones(BATCH, 16, 16))
    torch.testing.assert_close(out["partial_maps"][:, :, :k].sum(2), torch.ones(BATCH, 24, 8, 8))


def changed_pixels_are_zeroed_whole(dropped: torch.Tensor, plain: torch.Tensor) -> torch.Tensor:
    """(B, H, W) pixels where any channel changed; asserts each of them has every channel zero."""
    changed = (dropped != plain).any(1)
    assert changed.any(), "nothing was dropped in training"
    assert torch.all(dropped.permute(0, 2, 3, 1)[changed] == 0), "a pixel kept some channels"
    return changed


def check_dropout(cfg: DaNetConfig) -> None:
    dropped, plain, _, _ = maps_with_and_without_drop(cfg)
    changed_pixels_are_zeroed_whole(dropped, plain)


def check_dropblock(cfg: DaNetConfig) -> None:
    dropped, plain, _, _ = maps_with_and_without_drop(cfg)
    changed = changed_pixels_are_zeroed_whole(dropped, plain)
    padded = nn.functional.pad(changed.float(), (1, 1, 1, 1))
    neighbours = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    assert torch.all(neighbours[changed] > 0), "an isolated dropped pixel: not a block"


def check_partdrop(cfg: DaNetConfig) -> None:
    """Whole parts: each part's I, U, V channels are all kept or all zero, the same parts in the global map
    and in every joint's partial map that shows them; the background is never dropped."""
    dropped, plain, partial, partial_plain = maps_with_and_without_drop(cfg)
    as_before = (dropped == plain).flatten(2).all(-1)  # (B, 75) channel untouched
    zeroed = (dropped == 0).flatten(2).all(-1) & ~as_before
    assert as_before[:, [0, 25, 50]].all(), "the background was dropped"
    lost = set()
    for b in range(BATCH):
        for part in range(1, 25):
            channels = [part, 25 + part, 50 + part]
            if zeroed[b, channels].all():
                lost.add((b, part))
            else:
                assert as_before[b, channels].all(), (b, part, "partly dropped")
    assert lost, "no part was dropped in training"
    k = partial.shape[2] // 3
    for b in range(BATCH):
        for joint, subset in enumerate(PARTIAL_PART_SUBSETS):
            parts = (0, *subset) if k == 7 else tuple(range(25))
            for slot, part in enumerate(parts):
                channels = [slot, k + slot, 2 * k + slot]
                got, before = partial[b, joint, channels], partial_plain[b, joint, channels]
                if (b, part) in lost:
                    assert torch.all(got == 0), (b, joint, part)
                else:
                    assert torch.equal(got, before), (b, joint, part)


# -- RoI scales and partial maps ----------------------------------------------------------------------------------


def check_equal_roi_scale(cfg: DaNetConfig) -> None:
    model, _ = build(cfg)
    per_joint, _ = build(tiny_config())
    for name in ("alpha", "delta"):
        value = getattr(model.roi, name)
        assert torch.all(value == value[0]), f"{name} differs between joints"
        torch.testing.assert_close(value[0], getattr(per_joint.roi, name).mean())


def check_learnable_roi(cfg: DaNetConfig) -> None:
    model, body = build(cfg)
    learnable = dict(model.roi.named_parameters())
    assert set(learnable) == {"alpha", "delta"}
    out, targets = train_forward(model, body)
    danet_losses(out, targets, cfg, body)["total"].backward()
    assert learnable["alpha"].grad.abs().sum() > 0 and learnable["delta"].grad.abs().sum() > 0


def check_box_roi_scale(cfg: DaNetConfig) -> None:
    model, _ = build(cfg)
    probs = torch.zeros(1, 25, 8, 8)
    probs[:, 0] = 1.0  # background everywhere except rows 2..5 (4 px) x columns 1..6 (6 px)
    probs[:, 0, 2:6, 1:7] = 0.0
    probs[:, 7, 2:6, 1:7] = 1.0
    side = max(6 / 8 * 2, 4 / 8 * 2)  # the box's longer side in normalised units: 1.5
    joints = torch.rand(1, 24, 2, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    _, scales = model.roi.eval()(joints, probs)
    expected = cfg.roi.box_alpha * side + cfg.roi.box_delta
    torch.testing.assert_close(scales, torch.full((1, 24), expected))
    out = eval_forward(model)  # on the network's own maps: one box per image, one scale for all its joints
    assert torch.allclose(out["roi_scales"], out["roi_scales"][:, :1].expand(-1, 24))


def check_all_parts(cfg: DaNetConfig) -> None:
    model, body = build(cfg)
    out, _ = train_forward(model, body)  # PartDrop runs on the full maps too
    assert out["partial_index_logits"].shape == (BATCH, 24, 25, 8, 8)
    assert out["partial_maps"].shape == (BATCH, 24, 75, 8, 8)


def check_matrix_rotations(cfg: DaNetConfig) -> None:
    model, body = build(cfg)
    out, targets = train_forward(model, body)
    losses = danet_losses(out, targets, cfg, body)
    assert "orthogonality" in losses and float(losses["orthogonality"].detach()) > 0
    eye = torch.eye(3).expand(BATCH, 24, 3, 3)
    assert not torch.allclose(out["rotmats"] @ out["rotmats"].transpose(-1, -2), eye, atol=1e-6)


CHECKS: dict[str, Callable[[DaNetConfig], None]] = {
    "global_only": check_global_only,
    "dnet": check_dnet,
    "refine_direct": check_refine("direct"),
    "refine_position_implicit": check_refine("position_implicit"),
    "refine_position_aided": check_refine("position_aided"),
    "fixed_edges": check_fixed_edges,
    "no_drop": check_no_drop,
    "dropout": check_dropout,
    "dropblock": check_dropblock,
    "equal_roi_scale": check_equal_roi_scale,
    "learnable_roi": check_learnable_roi,
    "box_roi_scale": check_box_roi_scale,
    "all_parts": check_all_parts,
    "matrix_rotations": check_matrix_rotations,
}
# The network a check must fail on: the tiny preset without the switch, or, where the tiny preset already
# has the switch's setting, the nearest other setting.
WITHOUT = {"refine_position_aided": "refine_position_implicit", "dropblock": "dropout"}


def test_every_ablation_has_a_check():
    assert set(CHECKS) == set(ABLATIONS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_ablation_switch_changes_what_it_names(name):
    CHECKS[name](ablation(name, "tiny"))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_check_fails_without_its_switch(name):
    other = ablation(WITHOUT[name], "tiny") if name in WITHOUT else tiny_config()
    with pytest.raises(AssertionError):
        CHECKS[name](other)


def test_partdrop_removes_whole_parts_and_the_others_do_not():
    check_partdrop(tiny_config())  # the tiny preset's default drop
    check_partdrop(ablation("all_parts", "tiny"))  # 25-part partial maps
    for other in ("dropout", "dropblock", "no_drop"):
        with pytest.raises(AssertionError):
            check_partdrop(ablation(other, "tiny"))
