"""Body models: the built-in open model, SMPL file loading (pkl without chumpy, npz), dense parts, symmetry."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from scipy.io import savemat

from pipeline.body import BodyModelFileError, load_body_model, load_dense_parts, read_smpl_file
from pipeline.body.constants import PART_FLIP, SMPL_PARENTS
from pipeline.body.smpl_io import write_npz_deterministic
from tests.fixtures_data.smpl_standin import write_chumpy_pickle


@pytest.fixture(scope="module")
def body():
    return load_body_model("anny-smpl24")


@pytest.fixture(scope="module")
def parts():
    return load_dense_parts("anny-smpl24")


def test_zero_pose_and_betas_give_template_and_regressed_joints(body):
    out = body()
    torch.testing.assert_close(out.vertices[0], body.v_template)
    torch.testing.assert_close(out.joints[0], body.J_regressor @ body.v_template)


def test_parents_are_smpl_kintree(body):
    assert body.parents.tolist() == list(SMPL_PARENTS)


def test_open_model_stands_in_a_t_pose_facing_plus_z(body):
    out = body()
    joints, vertices = out.joints[0], out.vertices[0]
    for wrist, shoulder in ((20, 16), (21, 17)):
        assert abs(float(joints[wrist, 1] - joints[shoulder, 1])) < 0.05
    assert joints[20, 0] > 0.5 and joints[21, 0] < -0.5, "left arm along +x, right arm along -x"
    height = float(vertices[:, 1].max() - vertices[:, 1].min())
    assert 1.5 <= height <= 2.0
    nose = body.regress(out.vertices, "spin24")[0, 19]
    assert nose[2] > joints[15, 2] + 0.05, "the face points along +z"


def test_betas_change_shape_and_joints_follow(body):
    betas = torch.zeros(2, 10)
    betas[1, 0] = 2.0
    out = body(betas=betas)
    heights = out.vertices[..., 1].amax(1) - out.vertices[..., 1].amin(1)
    assert abs(float(heights[1] - heights[0])) > 0.02
    torch.testing.assert_close(out.joints[1], body.J_regressor @ out.vertices[1], atol=5e-3, rtol=0)


def test_axis_angle_and_rotation_matrix_poses_agree_and_root_rotation_is_rigid(body):
    generator = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(3, 72, generator=generator)
    from smplx.lbs import batch_rodrigues

    rotmats = batch_rodrigues(pose.reshape(-1, 3)).reshape(3, 24, 3, 3)
    a, b = body(pose=pose), body(pose=rotmats)
    torch.testing.assert_close(a.vertices, b.vertices)

    root_only = torch.zeros(1, 72)
    root_only[0, :3] = torch.tensor([0.0, 1.2, 0.0])
    rest, turned = body(), body(pose=root_only)
    rotation = batch_rodrigues(root_only[:, :3])[0]
    pelvis = rest.joints[0, 0]
    expected = (rest.vertices[0] - pelvis) @ rotation.T + pelvis
    torch.testing.assert_close(turned.vertices[0], expected, atol=1e-5, rtol=0)


def test_translation_moves_vertices_and_joints(body):
    transl = torch.tensor([[0.1, -0.2, 3.0]])
    moved, rest = body(transl=transl), body()
    torch.testing.assert_close(moved.vertices, rest.vertices + transl[:, None])
    torch.testing.assert_close(moved.joints, rest.joints + transl[:, None])


def test_bad_pose_shape_is_a_clear_error(body):
    with pytest.raises(ValueError, match="pose must be"):
        body(pose=torch.zeros(1, 70))


def test_mirror_map_is_an_involution_that_mirrors_geometry(body):
    mirror = body.vertex_mirror
    assert torch.equal(mirror[mirror], torch.arange(body.num_vertices))
    mirrored = body.v_template[mirror] * torch.tensor([-1.0, 1.0, 1.0])
    assert float((mirrored - body.v_template).norm(dim=1).max()) < 5e-3


def test_dense_parts_cover_the_body_with_valid_uv(body, parts):
    assert parts.part.min() >= 1 and parts.part.max() <= 24
    assert set(np.unique(parts.face_part).tolist()) == set(range(1, 25))
    assert parts.uv.min() >= 0.0 and parts.uv.max() <= 1.0
    assert np.array_equal(np.unique(parts.render_to_body), np.arange(body.num_vertices))
    # each part's chart spans [0, 1] in both directions
    for part in range(1, 25):
        uv = parts.uv[parts.part == part]
        assert uv.min(0).max() < 0.05 and uv.max(0).min() > 0.95


def test_mirror_maps_left_parts_onto_right_parts(body, parts):
    mirror = body.vertex_mirror.numpy()
    face_vertices = parts.render_to_body[parts.faces]
    part_of_face = {tuple(sorted(f)): p for f, p in zip(face_vertices.tolist(), parts.face_part.tolist())}
    flipped = [part_of_face.get(tuple(sorted(mirror[f].tolist()))) for f in face_vertices]
    agree = np.mean([q == PART_FLIP[p] for q, p in zip(flipped, parts.face_part)])
    assert agree >= 0.99


# --- real SMPL files, written by the tests in the official formats -------------------------------------


def _tiny_smpl_arrays(num_vertices: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = rng.random((num_vertices, 24))
    regressor = rng.random((24, num_vertices))
    return {
        "v_template": rng.normal(size=(num_vertices, 3)),
        "shapedirs": rng.normal(size=(num_vertices, 3, 10)) * 0.01,
        "posedirs": rng.normal(size=(num_vertices, 3, 207)) * 0.001,
        "J_regressor": regressor / regressor.sum(1, keepdims=True),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295, *SMPL_PARENTS[1:]], list(range(24))], dtype=np.int64),
        "f": rng.integers(0, num_vertices, size=(40, 3)).astype(np.uint32),
    }


def test_chumpy_pickle_and_npz_load_to_identical_arrays(tmp_path):
    arrays = _tiny_smpl_arrays()
    write_chumpy_pickle(tmp_path / "SMPL_NEUTRAL.pkl", arrays)
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    from_pkl = read_smpl_file(tmp_path / "SMPL_NEUTRAL.pkl")
    from_npz = read_smpl_file(tmp_path / "SMPL_NEUTRAL.npz")
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"):
        np.testing.assert_array_equal(getattr(from_pkl, key), getattr(from_npz, key), err_msg=key)
    model = load_body_model(tmp_path, gender="neutral")
    out = model(pose=0.1 * torch.ones(2, 72), betas=torch.ones(2, 10))
    assert out.vertices.shape == (2, 30, 3) and out.joints.shape == (2, 24, 3)
    assert model.posedirs is not None


def test_gendered_files_are_found_in_a_folder(tmp_path):
    arrays = _tiny_smpl_arrays()
    np.savez(tmp_path / "basicmodel_f_lbs_10_207_0_v1.0.0.npz", **arrays)
    np.savez(tmp_path / "basicmodel_m_lbs_10_207_0_v1.0.0.npz", **_tiny_smpl_arrays(seed=1))
    female = read_smpl_file(load_body_model.__globals__["resolve_model_path"](tmp_path, "female"))
    np.testing.assert_array_equal(female.v_template, arrays["v_template"])
    with pytest.raises(BodyModelFileError, match="no neutral SMPL model file"):
        load_body_model(tmp_path, gender="neutral")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("weights"), "missing key 'weights'"),
        (lambda a: a.__setitem__("shapedirs", a["shapedirs"][:5]), "key 'shapedirs' has shape"),
        (lambda a: a.__setitem__("J_regressor", np.full((24, 30), np.nan)), "key 'J_regressor' contains NaN"),
        (lambda a: a.__setitem__("kintree_table", np.zeros((2, 24), np.int64)), "not SMPL's 24-joint tree"),
    ],
)
def test_bad_model_files_name_the_file_and_key(tmp_path, mutate, message):
    arrays = _tiny_smpl_arrays()
    mutate(arrays)
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    with pytest.raises(BodyModelFileError, match=message) as info:
        read_smpl_file(path)
    assert str(path) in str(info.value)


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, **_tiny_smpl_arrays())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BodyModelFileError, match="model.npz"):
        read_smpl_file(path)
    with pytest.raises(BodyModelFileError, match="not found"):
        read_smpl_file(tmp_path / "absent.pkl")
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(BodyModelFileError, match="bad.pkl"):
        read_smpl_file(tmp_path / "bad.pkl")


def test_h36m_regressor_is_registered_and_checked(tmp_path, smpl_standin):
    body, files = smpl_standin
    model = load_body_model(files["smpl"], h36m_regressor=files["h36m"])
    joints = model.regress(model().vertices, "h36m17")
    assert joints.shape == (1, 17, 3)
    assert joints[0, 1, 0] > 0 > joints[0, 4, 0]  # row 1 is the left hip (+x), row 4 the right
    regressor = np.load(files["h36m"])
    np.save(tmp_path / "wrong.npy", regressor[:14])
    with pytest.raises(BodyModelFileError, match="wrong.npy"):
        load_body_model(files["smpl"], h36m_regressor=tmp_path / "wrong.npy")
    swapped = regressor[[0, 4, 5, 6, 1, 2, 3, *range(7, 17)]]  # legs in name order: right first
    np.save(tmp_path / "name_order.npy", swapped)
    with pytest.raises(
        BodyModelFileError, match=r"name_order.npy: row 1 \(left_hip\).*not on the body's left"
    ):
        load_body_model(files["smpl"], h36m_regressor=tmp_path / "name_order.npy")
    np.save(tmp_path / "random.npy", np.random.default_rng(0).random((17, body.v_template.shape[0])))
    with pytest.raises(BodyModelFileError, match="random.npy: row 0 .*not a keypoint regressor"):
        load_body_model(files["smpl"], h36m_regressor=tmp_path / "random.npy")


def test_uv_processed_mat_is_read_with_one_based_indices(tmp_path):
    # Two triangles of part 3 and 7 over 6 UV vertices that map onto 4 SMPL vertices (a duplicated seam).
    savemat(
        tmp_path / "UV_Processed.mat",
        {
            "All_vertices": np.array([[1, 2, 3, 2, 3, 4]], dtype=np.float64),
            "All_FaceIndices": np.array([[3], [7]], dtype=np.float64),
            "All_Faces": np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float64),
            "All_U_norm": np.array([[0.0], [1.0], [0.5], [0.2], [0.3], [0.4]]),
            "All_V_norm": np.array([[0.1], [0.2], [0.3], [0.4], [0.5], [0.6]]),
        },
    )
    parts = load_dense_parts(tmp_path / "UV_Processed.mat")
    assert parts.render_to_body.tolist() == [0, 1, 2, 1, 2, 3]
    assert parts.faces.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert parts.part.tolist() == [3, 3, 3, 7, 7, 7]
    np.testing.assert_allclose(parts.uv[1], [1.0, 0.2])


def test_deterministic_npz_writer_gives_identical_bytes(tmp_path):
    arrays = _tiny_smpl_arrays()
    write_npz_deterministic(tmp_path / "a.npz", arrays)
    write_npz_deterministic(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())


@pytest.mark.slow
@pytest.mark.anny
def test_anny_export_is_deterministic(tmp_path):
    pytest.importorskip("anny")
    from stages.build_body_model import main

    for name in ("a.npz", "b.npz"):
        assert main(["--samples", "60", "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
