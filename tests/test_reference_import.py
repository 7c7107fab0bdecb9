"""The authors' checkpoint layout converts into the paper preset: keys, shapes, where each tensor lands,
refusals, and an unchanged forward pass through ours -> theirs -> ours."""

from __future__ import annotations

import pytest
import torch

from model.config import config_from_dict, paper_config
from model.danet import DaNet
from model.reference_import import (
    GRAPH_BUFFERS,
    SP,
    ReferenceKeyError,
    dims_from_config,
    import_checkpoint,
    ours_to_reference,
    reference_graphs,
    reference_to_ours,
)
from model.reference_keys import ReferenceDims, load_listing, reference_keys
from model.training.checkpoint import model_from_checkpoint, save_checkpoint
from stages import import_reference
from tests.model_fakes import FakeBody

# The paper preset at reduced width: the authors' layout at these widths is reference_keys(SMALL_DIMS).
SMALL = {
    "preset": "paper",
    "image_size": 64,
    "roi": {"size": 16},
    "iuv": {
        "hrnet": {
            "width": 8, "stem_width": 16, "layer1_planes": 8, "layer1_blocks": 1, "stage_modules": [1, 1, 1],
            "stage_blocks": 1,
        }
    },
    "streams": {
        "global_resnet": {"width": 8, "layers": [1, 1, 1, 1]},
        "local_resnet": {"width": 8, "layers": [1, 1, 1, 1]},
        "rotation_features": 16,
        "stem_channels": 8,
    },
    "refine": {"hidden": [32, 32]},
}  # fmt: skip
EST = "img2iuv.iuv_est."


def small_config():
    return config_from_dict(SMALL)


def small_model(seed: int = 0) -> DaNet:
    torch.manual_seed(seed)
    model = DaNet(small_config())
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a misplaced buffer shows in the forward
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


def their_state(dims: ReferenceDims, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the authors' names and shapes (from the listing), random values, their graphs."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_keys(dims).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(3)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    state.update(reference_graphs())
    return state


def test_listing_file_is_the_generated_listing_and_holds_facts_read_from_their_code():
    listing = load_listing()
    assert listing == reference_keys()
    sp = "iuv2smpl.smpl_para_Outs."
    facts = {
        EST + "conv1.weight": (64, 3, 3, 3),
        EST + "transition1.1.0.0.weight": (96, 256, 3, 3),
        EST + "stage4.2.fuse_layers.0.3.0.weight": (48, 384, 1, 1),
        EST + "final_pred.predict_u.weight": (25, 48, 3, 3),
        EST + "final_pred.predict_ann_index.bias": (15,),
        EST + "final_pred.predict_hm.0.2.conv1.weight": (12, 48, 1, 1),
        EST + "final_pred.predict_hm.1.weight": (24, 48, 3, 3),
        EST + "final_pred.predict_partial_iuv.weight": (504, 48, 3, 3),  # groups 24: 24 x 21 out, 48 in
        sp + "body_net.0.weight": (64, 75, 1, 1),
        sp + "body_net.3.conv1.weight": (64, 64, 7, 7),
        sp + "body_net.3.final_layer.weight": (13, 512),
        sp + "limb_net.0.weight": (64, 21, 1, 1),
        sp + "limb_reslayer.layer4.0.conv1.weight": (3072, 256, 3, 3),
        sp + "limb_reslayer.layer4.1.conv2.weight": (3072, 128, 3, 3),
        sp + "pose_regressors.1.1.weight": (144, 128, 1, 1),
        sp + "coord_regressors.0.1.bias": (72,),
        sp + "refine_gcn.gc.0.weight": (128, 256),
        sp + "refine_gcn.act.2.0.running_mean": (24,),  # BatchNorm1d over the 24 joints
        sp + "edge_importance": (1, 24, 24),
        sp + "mean_pose": (1, 144),
    }
    assert {k: listing[k] for k in facts} == facts
    assert EST + "stage4.2.fuse_layers.1.0.0.0.weight" not in listing  # the last module fuses into branch 0
    assert not any(k.startswith("iuv2smpl.smpl.") for k in listing)  # their saver drops the SMPL body


def test_the_full_paper_preset_exports_exactly_the_released_layout():
    with torch.device("meta"):
        model = DaNet(paper_config())
    theirs = ours_to_reference(model.state_dict())
    listing = load_listing()
    assert list(theirs) == list(listing)
    assert {k: tuple(v.shape) for k, v in theirs.items()} == listing


def test_their_state_dict_converts_loads_strictly_and_every_tensor_lands_in_place():
    cfg = small_config()
    theirs = their_state(dims_from_config(cfg))
    theirs[EST + "final_pred.predict_uv_index.weight"] = torch.arange(25 * 8 * 9.0).reshape(25, 8, 3, 3)
    theirs[EST + "final_pred.predict_partial_iuv.bias"] = torch.arange(24 * 21.0)
    theirs["img2iuv.learned_ratio"] = torch.linspace(-1, 1, 24)
    rot = torch.zeros(24 * 6, 16, 1, 1)
    rot[5 * 6 + 1, 7] = 7.0  # joint 5, their 6D number 1 (a2x), input channel 7
    theirs[SP + "pose_regressors.1.1.weight"] = rot
    theirs[SP + "coord_regressors.0.1.bias"] = torch.arange(72.0)
    gc = torch.zeros(16, 32)
    gc[3, 11] = 5.0  # their GraphConv weight is (in, out)
    theirs[SP + "refine_gcn.gc.0.weight"] = gc
    theirs[SP + "mean_pose"] = torch.arange(1.0, 145.0)[None]
    theirs[SP + "mean_cam_shape"] = torch.arange(13.0)[None]
    theirs[SP + "edge_importance"] = torch.arange(576.0).reshape(1, 24, 24)

    model = small_model(1)
    model.load_state_dict(reference_to_ours(theirs, model.state_dict()), strict=True)
    assert torch.equal(model.iuv.heads.index.weight, theirs[EST + "final_pred.predict_uv_index.weight"])
    assert torch.equal(model.partial_heads.conv.bias, torch.arange(24 * 21.0))
    assert torch.equal(model.roi.alpha, torch.linspace(-1, 1, 24).clamp_min(0))  # they use ReLU(ratio)
    w = model.refine.rot_heads[1].weight  # (24, C, 6) with ours [a1x a1y a1z a2x a2y a2z]: a2x is 3
    assert w[5, 7, 3] == 7.0 and w.abs().sum() == 7.0
    assert model.refine.pos_heads[0].bias[2, 2] == 8.0  # joint 2, z = their channel 2 * 3 + 2
    lin = model.refine.refine.layers[0].linear.weight  # (out, in)
    assert lin[11, 3] == 5.0 and lin.abs().sum() == 5.0
    assert model.mean_rotation[0].tolist() == [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]
    assert model.mean_cam.tolist() == [0.0, 1.0, 2.0] and model.mean_betas.tolist() == list(range(3, 13))
    assert torch.equal(model.refine.refine.edges, torch.arange(576.0).reshape(24, 24))
    stem = theirs[SP + "limb_net.1.running_var"]
    assert torch.equal(model.local_streams.stem[1].running_var, stem)
    layer4 = theirs[SP + "limb_reslayer.layer4.0.downsample.0.weight"]
    assert torch.equal(model.local_streams.layer4[0].downsample[0].weight, layer4)


def _rot6d_to_matrix_reference(x: torch.Tensor) -> torch.Tensor:
    """Their geometry.rot6d_to_rotmat (SPIN's), written out: view (3, 2), columns a1, a2, Gram-Schmidt."""
    m = x.reshape(-1, 3, 2)
    a1, a2 = m[:, :, 0], m[:, :, 1]
    b1 = a1 / a1.norm(dim=1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=1, keepdim=True)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=1)], dim=-1)


def test_their_6d_numbers_give_the_same_rotation_in_our_model():
    cfg = small_config()
    theirs = their_state(dims_from_config(cfg))
    pose = torch.randn(1, 144)
    theirs[SP + "mean_pose"] = pose
    model = small_model()
    model.load_state_dict(reference_to_ours(theirs, model.state_dict()))
    ours = model.to_rotmats(torch.zeros(1, 24, 6))[0]
    assert torch.allclose(ours, _rot6d_to_matrix_reference(pose.reshape(24, 6)), atol=1e-6)


def test_round_trip_through_their_layout_keeps_the_forward_pass():
    cfg = small_config()
    source = small_model(0)
    theirs = ours_to_reference(source.state_dict(), dims_from_config(cfg))
    assert set(theirs) == set(reference_keys(dims_from_config(cfg)))
    target = small_model(1)
    target.load_state_dict(reference_to_ours(theirs, target.state_dict()), strict=True)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = source(image), target(image)
    for key in ("index_logits", "partial_u", "global_maps", "partial_maps", "cam", "betas", "rotmats"):
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    for pa, pb in zip(a["positions"], b["positions"]):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_a_checkpoint_of_another_config_is_refused_naming_the_first_key_that_does_not_fit():
    cfg = small_config()
    wider = dims_from_config(cfg).__class__(**{**dims_from_config(cfg).__dict__, "hrnet_width": 12})
    model = small_model()
    with pytest.raises(ReferenceKeyError) as err:
        reference_to_ours(their_state(wider), model.state_dict(), "wide.pt")
    # the stem and layer1 do not depend on the width: the first misfit is the first transition
    assert "wide.pt: img2iuv.iuv_est.transition1.0.0.weight -> iuv.backbone.transition1.0.0.weight" in str(
        err.value
    )


def test_unknown_missing_and_mismatched_graph_keys_are_errors_that_list_them():
    cfg = small_config()
    model = small_model()
    theirs = their_state(dims_from_config(cfg))
    with pytest.raises(ReferenceKeyError, match=r"1 key\(s\) of theirs match no rule: iuv2smpl\.extra\.w"):
        reference_to_ours({**theirs, "iuv2smpl.extra.w": torch.zeros(1)}, model.state_dict())
    short = {k: v for k, v in theirs.items() if not k.startswith(SP + "p2r_gcn.act.")}
    with pytest.raises(ReferenceKeyError, match=r"missing \(5\): refine\.pos_to_rot\.bn\.weight"):
        reference_to_ours(short, model.state_dict())
    bad_graph = {**theirs, GRAPH_BUFFERS[3]: torch.zeros(1, 24, 24)}
    with pytest.raises(ReferenceKeyError, match="A_mask differs"):
        reference_to_ours(bad_graph, model.state_dict())
    # dropped by name: the unused lstm-strategy modules and the SMPL body
    extra = {**theirs, "iuv2smpl.smpl.v_template": torch.zeros(6890, 3)}
    assert set(reference_to_ours(extra, model.state_dict())) == set(model.state_dict())


def test_import_stage_reads_their_file_and_evaluate_loads_the_result(tmp_path):
    cfg = small_config()
    source = small_model(0)
    theirs = ours_to_reference(source.state_dict(), dims_from_config(cfg))
    file = tmp_path / "danet_model_h36m_itw.pt"
    wrapped = {"model": {f"module.{k}": v for k, v in theirs.items()}, "optimizer": {"state": {}, "lr": 1e-4}}
    torch.save({**wrapped, "total_step_count": 123, "epoch": 4}, file)
    payload = import_checkpoint(file, cfg)
    assert payload["step"] == 123
    out = save_checkpoint(tmp_path / "ours.pt", payload)
    network, config = model_from_checkpoint(out, body=FakeBody())
    assert config["resolved_model"]["iuv"]["partial_head"] == "grouped"
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(network(image)["rotmats"], source(image)["rotmats"], atol=1e-6)


class _Code:
    """An object a weights_only load must refuse."""


def test_import_stage_refuses_code_and_misfits_with_exit_codes(tmp_path, capsys):
    pickled = tmp_path / "code.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "hook": _Code()}, pickled)
    assert import_reference.main([str(pickled), "--out", str(tmp_path / "o.pt")]) == 2
    assert "not a torch file of tensors" in capsys.readouterr().err
    small = tmp_path / "small.pt"
    torch.save({"model": their_state(dims_from_config(small_config()))}, small)
    assert import_reference.main([str(small), "--out", str(tmp_path / "o.pt")]) == 1  # the full preset
    assert "a checkpoint of another config?" in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()
