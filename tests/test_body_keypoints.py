"""The field's keypoint files on an SMPL-topology body: SPIN-24 from J_regressor_extra, the H36M row order,
dense parts that must fit the body, and the render identity of the body files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.body import BodyModelFileError, load_body_model
from pipeline.body.constants import H36M17_TO_J14, SPIN24_TO_J14
from pipeline.body.spec import BodySpec
from tests.fixtures_data import smpl_standin as standin

# SPIN's constants.JOINT_MAP for its 24 ground-truth joints, over [24 SMPL joints, smplx's 21 vertex joints
# (nose, right eye, left eye, right ear, left ear, feet, finger tips), 9 J_regressor_extra rows].
SPIN_JOINT_MAP = (8, 5, 45, 46, 4, 7, 21, 19, 17, 16, 18, 20, 47, 48, 49, 50, 51, 52, 53, 24, 26, 25, 28, 27)
# GraphCMR's JOINTS_IDX over [24 SMPL joints, its 14 J_regressor_extra rows].
GRAPHCMR_JOINTS_IDX = (
    8,
    5,
    29,
    30,
    4,
    7,
    21,
    19,
    17,
    16,
    18,
    20,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    24,
    26,
    25,
    28,
    27,
)


def _posed(model, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(2, 72, generator=generator)
    return model(pose=pose, betas=torch.randn(2, 10, generator=generator)).vertices


def test_spin24_follows_spin_joint_map(smpl_standin):
    body, files = smpl_standin
    model = load_body_model(files["smpl"], extra_regressor=files["extra"])
    vertices = _posed(model)
    smpl_joints = model.regress(vertices, "smpl24")
    face = vertices[:, [332, 6260, 2800, 4071, 583]]
    filler = torch.full((2, 16, 3), float("nan"))  # feet and fingers: not used by the 24 joints
    extra = torch.einsum("kv,bvc->bkc", torch.as_tensor(np.load(files["extra"])).float(), vertices)
    spin_layout = torch.cat([smpl_joints, face, filler, extra], dim=1)
    assert spin_layout.shape[1] == 54
    expected = spin_layout[:, list(SPIN_JOINT_MAP)]
    torch.testing.assert_close(model.regress(vertices, "spin24"), expected, atol=1e-5, rtol=0)


def test_graphcmr_extra_file_gives_its_joints(smpl_standin, tmp_path):
    body, files = smpl_standin
    graphcmr = standin.extra_regressor(body, graphcmr=True)
    np.save(tmp_path / "J_regressor_extra.npy", graphcmr)
    model = load_body_model(files["smpl"], extra_regressor=tmp_path / "J_regressor_extra.npy")
    vertices = _posed(model, seed=1)
    extra = torch.einsum("kv,bvc->bkc", torch.as_tensor(graphcmr).float(), vertices)
    layout = torch.cat([model.regress(vertices, "smpl24"), extra], dim=1)
    expected = layout[:, list(GRAPHCMR_JOINTS_IDX)]
    torch.testing.assert_close(model.regress(vertices, "spin24"), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r[[1, 0, *range(2, 9)]], r"row 0 \(right_hip\).*not on the body's right"),
        (lambda r: r[:7], "7 rows is neither SPIN's"),
        (lambda r: r[:, :6000], "6000 columns but the body has 6890 vertices"),
        (lambda r: r * 3.0, "summing to 3.000"),
        (lambda r: r[[0, 1, 2, 3, 4, 5, 6, 8, 7]], r"row 7 \(jaw_h36m\) .*lies above head_h36m \(row 8\)"),
    ],
)
def test_extra_files_that_mean_something_else_are_refused(smpl_standin, tmp_path, edit, message):
    _, files = smpl_standin
    np.save(tmp_path / "odd_extra.npy", edit(np.load(files["extra"])))
    with pytest.raises(BodyModelFileError, match=message) as err:
        load_body_model(files["smpl"], extra_regressor=tmp_path / "odd_extra.npy")
    assert "odd_extra.npy" in str(err.value)


def test_rendering_an_smpl_body_without_the_extra_file_says_what_to_pass(smpl_standin):
    _, files = smpl_standin
    spec = BodySpec(str(files["smpl"]), str(files["uv"]))
    with pytest.raises(BodyModelFileError, match="--extra-regressor"):
        spec.check_renderable()
    with pytest.raises(KeyError, match="J_regressor_extra"):
        spec.load_body().regress(torch.zeros(1, 6890, 3), "spin24")
    with pytest.raises(BodyModelFileError, match="--dense-parts"):
        BodySpec(str(files["smpl"]), "", str(files["extra"])).check_renderable()
    BodySpec(str(files["smpl"]), str(files["uv"]), str(files["extra"])).check_renderable()


def test_one_table_serves_both_bodies(smpl_standin):
    """H36M-17 -> J14 and SPIN-24 -> J14 name the same joints on the open body and on SMPL."""
    _, files = smpl_standin
    bodies = {
        "anny": load_body_model("anny-smpl24"),
        "smpl": load_body_model(files["smpl"], h36m_regressor=files["h36m"], extra_regressor=files["extra"]),
    }
    for name, model in bodies.items():
        rest = model().vertices
        from_h36m = model.regress(rest, "h36m17")[0, list(H36M17_TO_J14)]
        from_spin = model.regress(rest, "spin24")[0, list(SPIN24_TO_J14)]
        # J14: right leg 0-2, left leg 3-5, right arm 6-8, left arm 9-11 (+x is the body's left)
        assert bool((from_h36m[:3, 0] < 0).all() and (from_h36m[3:6, 0] > 0).all()), name
        assert bool((from_h36m[6:9, 0] < 0).all() and (from_h36m[9:12, 0] > 0).all()), name
        limbs = (from_h36m[:12] - from_spin[:12]).norm(dim=-1)
        assert float(limbs.max()) < 0.08, (name, limbs)  # same joints, up to where each file puts hips


def test_dense_parts_of_another_body_are_refused_naming_both_files(smpl_standin):
    _, files = smpl_standin
    with pytest.raises(BodyModelFileError) as err:
        BodySpec("anny-smpl24", str(files["uv"])).load_parts()
    assert "UV_Processed.mat" in str(err.value) and "anny-smpl24" in str(err.value)
    with pytest.raises(BodyModelFileError) as err:
        BodySpec(str(files["smpl"]), "anny-smpl24", str(files["extra"])).load_parts()
    assert "anny-smpl24" in str(err.value) and str(files["smpl"]) in str(err.value)
    assert "6890" in str(err.value)


def test_identity_follows_file_content(smpl_standin, tmp_path):
    body, files = smpl_standin
    uv = standin.write_uv_processed(tmp_path / "UV_Processed.mat", body)
    spec = BodySpec(str(files["smpl"]), str(uv), str(files["extra"]))
    first = spec.identity()
    assert spec.identity() == first
    assert set(first["sha256"]) >= {"dense_parts:UV_Processed.mat", "extra_regressor:J_regressor_extra.npy"}
    assert sum(key.startswith("model:") for key in first["sha256"]) == 3  # the three genders
    from scipy.io import loadmat, savemat

    mat = loadmat(uv)
    mat["All_U_norm"] = mat["All_U_norm"] * 0.5
    savemat(uv, {k: v for k, v in mat.items() if not k.startswith("__")})
    assert spec.identity()["sha256"] != first["sha256"]
    assert spec.identity()["dense_parts"] == first["dense_parts"]


def test_spec_reads_environment_only_for_flags_not_given(monkeypatch):
    monkeypatch.setenv("DANET_BODY_MODEL", "/somewhere/smpl")
    monkeypatch.setenv("DANET_DENSE_PARTS", "/somewhere/UV_Processed.mat")
    spec = BodySpec.from_env(model=None, dense_parts="", extra_regressor=None)
    assert spec.model == "/somewhere/smpl" and spec.dense_parts == "" and spec.extra_regressor == ""
    assert BodySpec.from_env(model="").model == "anny-smpl24"
    assert BodySpec(model="None", dense_parts="null") == BodySpec()
