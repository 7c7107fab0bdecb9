"""The predict stage: crops like training, a full-image camera equal to the crop camera, valid output files,
boxes honoured, bad inputs reported, usage errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from model import inference
from model.camera import project
from pipeline.crop import crop_transform
from stages.predict import main as predict

PADDING = inference.BOX_PADDING


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A tiny untrained checkpoint and a folder: two synthetic photographs, a corrupt .jpg and a .txt."""
    from model.training.config import load_train_config
    from model.training.loop import Trainer
    from stages.synthesize import main as synthesize

    root = tmp_path_factory.mktemp("predict")
    config = load_train_config(None, ["model.preset=tiny", "model.overrides.image_size=64", "run.device=cpu"])
    trainer = Trainer(config, root / "run")
    checkpoint = trainer.save("model.pt")
    assert synthesize(["--out", str(root / "synth"), "--n", "2", "--size", "128", "--no-progress"]) == 0
    images = root / "images"
    images.mkdir()
    for i, path in enumerate(sorted((root / "synth" / "images").rglob("*.jpg"))):
        shutil.copy(path, images / f"photo{i}.jpg")
    good = sorted(images.glob("photo*.jpg"))
    (images / "broken.jpg").write_bytes(good[0].read_bytes()[:200])
    (images / "notes.txt").write_text("not an image\n")
    return {
        "root": root,
        "checkpoint": checkpoint,
        "images": images,
        "good": good,
        "body": trainer.body,
        "map_size": trainer.net_cfg.image_size // 4,
    }


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (F, 3) 0-based faces of an OBJ file (fails on anything unexpected)."""
    vertices, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            vertices.append([float(x) for x in line.split()[1:]])
        elif line.startswith("f "):
            faces.append([int(x) - 1 for x in line.split()[1:]])
        else:
            assert line.startswith("#") or not line.strip(), f"unexpected OBJ line {line!r}"
    return np.array(vertices), np.array(faces)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable image"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def projected(params: dict, mesh: np.ndarray) -> np.ndarray:
    """(V, 2) image pixels of the OBJ's camera-frame vertices through the written full-image camera."""
    cam = params["camera"]
    return mesh[:, :2] / mesh[:, 2:3] * cam["focal"] + np.asarray(cam["principal"])


def summary_line(capsys) -> tuple[dict, str]:
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_full_image_camera_reproduces_the_crop_projection(setup):
    """The crop camera's pixels, mapped back through the inverse crop transform, equal the full-image
    camera's projection (within 0.5 px), for boxes far from the image centre."""
    body = setup["body"]
    rng = np.random.default_rng(3)
    betas = torch.as_tensor(rng.normal(size=(3, 10)) * 0.5, dtype=torch.float32)
    pose = torch.as_tensor(rng.normal(size=(3, 72)) * 0.3, dtype=torch.float32)
    pose[:, 0] = np.pi  # camera-frame orientation (upright, facing the camera), as SPIN's fits
    vertices = body(betas=betas, pose=pose).vertices.double()
    cam = torch.tensor([[0.9, 0.05, -0.1], [0.6, -0.2, 0.15], [1.2, 0.0, 0.3]], dtype=torch.float64)
    height, width = 480, 640
    boxes = [
        inference.box_from_xywh(b) for b in ([20, 30, 150, 300], [500, 200, 120, 260], [300, 10, 60, 90])
    ]
    matrices = np.stack([crop_transform(np.asarray(b.center), b.scale, 224) for b in boxes])
    camera = inference.full_image_camera(vertices.numpy(), cam.numpy(), matrices, (height, width))

    crop_px = project(vertices, cam).numpy() * 112.0 + 111.5  # normalised crop coords -> crop pixels
    linear, offset = matrices[:, :, :2], matrices[:, :, 2]
    back = np.einsum("bij,bvj->bvi", np.linalg.inv(linear), crop_px - offset[:, None])
    in_image = inference.to_image_frame(vertices.numpy(), camera)
    full = (
        in_image[..., :2] / in_image[..., 2:3] * camera["focal"][:, None, None] + camera["principal"][:, None]
    )
    error = np.linalg.norm(full - back, axis=-1)
    assert error.max() < 0.5, error.max(axis=1)
    np.testing.assert_allclose(camera["residual_px"], error.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(camera["focal"], [5000.0 * b.side / 224 for b in boxes])
    np.testing.assert_allclose(camera["principal"], np.tile([(width - 1) / 2, (height - 1) / 2], (3, 1)))
    rotation = camera["rotation"]
    np.testing.assert_allclose(
        rotation @ rotation.transpose(0, 2, 1), np.tile(np.eye(3), (3, 1, 1)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0)
    # the naive answer (the crop translation, principal point moved to the image centre) is far off
    naive = inference.pinhole(
        vertices.numpy(), camera["focal"], camera["principal"], inference.crop_translation(cam.numpy())
    )
    assert np.linalg.norm(naive - back, axis=-1).min() > 20


def test_folder_run_writes_valid_files_and_skips_bad_ones(setup, capsys, tmp_path):
    out = tmp_path / "out"
    rc = predict(["--checkpoint", str(setup["checkpoint"]), str(setup["images"]), str(tmp_path / "nope.jpg"), "--out", str(out),
                  "--batch-size", "2", "--no-progress"])  # fmt: skip
    summary, err = summary_line(capsys)
    assert rc == 1
    assert "broken.jpg" in err and "notes.txt" in err and "not a decodable image" in err
    assert "nope.jpg: no such file" in err
    assert summary["images"] == 2 and summary["persons"] == 2 and summary["failed"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["photo0", "photo1"]
    body = setup["body"]
    for image_path in setup["good"]:
        folder = out / image_path.stem
        assert sorted(p.name for p in folder.iterdir()) == [
            "person0_iuv.png", "person0_iuv_vis.png", "person0_mesh.obj", "person0_overlay.png",
            "person0_params.json", "person0_side.png",
        ]  # fmt: skip
        vertices, faces = read_obj(folder / "person0_mesh.obj")
        assert vertices.shape == (body.num_vertices, 3) and faces.shape == tuple(body.faces.shape)
        assert faces.min() == 0 and faces.max() == body.num_vertices - 1
        assert np.all(vertices[:, 2] > 0), "mesh must lie in front of the camera"
        image = read_rgb(image_path)
        assert read_rgb(folder / "person0_overlay.png").shape == image.shape
        iuv = cv2.imread(str(folder / "person0_iuv.png"), cv2.IMREAD_UNCHANGED)
        assert (
            iuv.shape == (setup["map_size"], setup["map_size"], 3) and iuv[..., 2].max() <= 24
        )  # BGR: I last
        params = json.loads((folder / "person0_params.json").read_text())
        assert len(params["pose"]) == 72 and len(params["betas"]) == 10 and params["bbox"] is None
        assert params["camera"]["principal"] == [(image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2]


def test_bbox_puts_the_mesh_inside_the_box(setup, capsys, tmp_path):
    image_path = setup["good"][0]
    image = read_rgb(image_path)
    x, y, w, h = 8, 4, 40, 70  # off-centre, in full-image pixels
    rc = predict(["--checkpoint", str(setup["checkpoint"]), str(image_path), "--bbox", f"{x},{y},{w},{h}",
                  "--out", str(tmp_path), "--no-progress", "--device", "cpu"])  # fmt: skip
    summary, _ = summary_line(capsys)
    assert rc == 0 and summary["failed"] == 0 and summary["persons"] == 1
    folder = tmp_path / image_path.stem
    params = json.loads((folder / "person0_params.json").read_text())
    assert params["bbox"] == [x, y, w, h]
    side = PADDING * max(w, h)
    low = np.array([x + w / 2 - side / 2, y + h / 2 - side / 2])
    high = low + side
    mesh, _ = read_obj(folder / "person0_mesh.obj")
    pixels = projected(params, mesh)
    assert np.all(pixels >= low - 1) and np.all(pixels <= high + 1), (pixels.min(0), pixels.max(0), low, high)
    # it is really placed by the box: its extent is a good part of the window, centred near the box centre
    assert np.ptp(pixels, axis=0).max() > 0.5 * side
    assert np.linalg.norm(0.5 * (pixels.min(0) + pixels.max(0)) - (low + high) / 2) < 0.15 * side
    overlay = read_rgb(folder / "person0_overlay.png")
    changed = np.argwhere(np.any(overlay != image, axis=-1))  # (row, col)
    assert len(changed) > 50
    assert changed[:, 1].min() >= low[0] - 2 and changed[:, 1].max() <= high[0] + 2
    assert changed[:, 0].min() >= low[1] - 2 and changed[:, 0].max() <= high[1] + 2


def test_boxes_file_gives_one_output_per_person(setup, capsys, tmp_path):
    good = setup["good"]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({
        "boxes": [{"image": good[0].name, "bbox": [10, 10, 40, 60]}],
        "images": [{"id": 7, "file_name": good[0].name}, {"id": 8, "file_name": "elsewhere.jpg"}],
        "annotations": [
            {"image_id": 7, "bbox": [60, 40, 50, 80], "category_id": 1},
            {"image_id": 7, "bbox": [0, 0, 5, 5], "category_id": 3},
            {"image_id": 8, "bbox": [0, 0, 5, 5]},
        ],
    }))  # fmt: skip
    rc = predict(["--checkpoint", str(setup["checkpoint"]), *map(str, good), "--boxes", str(boxes),
                  "--out", str(tmp_path / "out"), "--no-progress", "--batch-size", "2"])  # fmt: skip
    summary, err = summary_line(capsys)
    assert rc == 0 and summary["persons"] == 3
    assert "elsewhere.jpg" in err and "no box" in err and good[1].name in err  # whole image for photo1
    for k, box in enumerate(([10, 10, 40, 60], [60, 40, 50, 80])):
        params = json.loads((tmp_path / "out" / good[0].stem / f"person{k}_params.json").read_text())
        assert params["bbox"] == box
    assert json.loads((tmp_path / "out" / good[1].stem / "person0_params.json").read_text())["bbox"] is None


def test_usage_errors_exit_2(setup, capsys, tmp_path):
    image = str(setup["good"][0])
    checkpoint = str(setup["checkpoint"])
    assert predict(["--checkpoint", checkpoint, image, "--bbox", "1,2,x", "--out", str(tmp_path)]) == 2
    assert "--bbox" in capsys.readouterr().err
    assert predict(["--checkpoint", checkpoint, image, "--bbox", "1,2,0,5", "--out", str(tmp_path)]) == 2
    assert predict(["--checkpoint", str(tmp_path / "missing.pt"), image, "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert predict(["--checkpoint", str(garbage), image, "--out", str(tmp_path)]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    bad = tmp_path / "boxes.json"
    bad.write_text(json.dumps([{"image": "a.jpg", "bbox": [1, 2, 3]}]))
    assert predict(["--checkpoint", checkpoint, image, "--boxes", str(bad), "--out", str(tmp_path)]) == 2
    assert "entry 0" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/person*")), "a usage error must write nothing"
