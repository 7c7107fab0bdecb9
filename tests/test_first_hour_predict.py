"""A newcomer's first hour, predictions: provenance and the synthetic-only warning, pictures people read,
honest box handling (issue 18, items 2, 3 and 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from model import inference
from model.training import provenance as prov
from pipeline.crop import crop_transform
from pipeline.render import annotate

# -- provenance ---------------------------------------------------------------------------------------------


def config(train: list, init: str | None = None) -> dict:
    return {
        "model": {"preset": "tiny", "ablation": None, "init": {"checkpoint": init, "modules": ["iuv"]}},
        "data": {"train": train, "batch_size": 4, "augment": True},
        "optim": {"lr": 1e-3, "lr_schedule": "step", "iuv_only_steps": 0},
        "run": {"steps": 10, "seed": 3},
        "resolved_model": {"image_size": 64},
    }


def shard_folder(root: Path, dataset: str, split: str, samples: int) -> str:
    folder = root / "somewhere" / split  # the path's names differ from the index on purpose
    folder.mkdir(parents=True)
    (folder / "index.json").write_text(
        json.dumps({"params": {"dataset": dataset, "split": split}, "samples": samples})
    )
    return str(folder)


def test_synthetic_only_run_is_flagged_and_plain_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no shards at the relative path, whatever the checkout holds
    record = prov.training_provenance(
        config([{"path": "data/shards/synth/train", "weight": 1.0}]), "anny-smpl24", 7
    )
    assert json.loads(json.dumps(record)) == record  # plain data only: a weights-only reader takes it
    assert record["datasets"] == [
        {"path": "data/shards/synth/train", "weight": 1.0, "dataset": "synth", "split": "train",
         "samples": None, "synthetic": True}
    ]  # fmt: skip
    assert record["steps"] == 7 and record["planned_steps"] == 10 and record["config"]["image_size"] == 64
    assert record["real_images_seen"] is False
    assert "never a photograph" in prov.synthetic_only_warning(record)
    assert "synth/train (synthetic) for 7 steps" in prov.describe(record)


def test_real_dataset_from_the_index_clears_the_warning(tmp_path):
    coco = shard_folder(tmp_path, "coco", "train", 123)
    record = prov.training_provenance(
        config([{"path": coco, "weight": 0.5}, "data/shards/synth/train"]), "smpl", 1
    )
    assert record["datasets"][0]["dataset"] == "coco" and record["datasets"][0]["samples"] == 123
    assert record["datasets"][0]["synthetic"] is False and record["datasets"][1]["synthetic"] is True
    assert record["real_images_seen"] is True and prov.synthetic_only_warning(record) is None


def test_init_weights_pass_their_origin_on(tmp_path):
    # weights trained on a real set make a synthetic fine-tune "has seen real images"
    real = shard_folder(tmp_path, "3dpw", "train", 5)
    weights = tmp_path / "w.pt"
    torch.save({"model": {}, "config": config([real]), "step": 99}, weights)
    record = prov.training_provenance(config(["data/shards/synth/train"], str(weights)), "anny-smpl24", 1)
    assert record["init"]["trained_on"]["steps"] == 99 and record["real_images_seen"] is True
    # a bare state dict says nothing: unknown, so no claim either way
    bare = tmp_path / "bare.pt"
    torch.save({"iuv.weight": torch.zeros(1)}, bare)
    record = prov.training_provenance(config(["data/shards/synth/train"], str(bare)), "anny-smpl24", 1)
    assert record["init"]["trained_on"] is None and record["real_images_seen"] is None
    assert prov.synthetic_only_warning(record) is None and "origin not recorded" in prov.describe(record)


def test_old_checkpoint_is_reconstructed_and_says_so():
    payload = {"config": config(["data/shards/synth/train"]), "step": 4, "body_model": "anny-smpl24"}
    record = prov.payload_provenance(payload)
    assert record["recorded"] is False and record["steps"] == 4 and "reconstructed" in prov.describe(record)
    assert prov.payload_provenance({"model": {}}) is None
    assert prov.describe(None).startswith("training data not recorded")


# -- pictures -----------------------------------------------------------------------------------------------


def test_iuv_contours_hand_counted():
    part = np.ones((3, 10), np.int64)
    part[:, 9] = 0  # background column: no line into it
    u = np.tile((np.arange(10) + 0.5) / 10.0, (3, 1))  # 0.05 .. 0.95 across the columns
    edges = annotate.iuv_contours(part, u, step=0.2)
    # levels floor(u / 0.2): 0 0 1 1 2 2 3 3 4 | bg -> crossings entering columns 2, 4, 6, 8
    assert sorted(set(np.nonzero(edges)[1])) == [2, 4, 6, 8]
    assert edges.sum() == 4 * 3


def test_iuv_in_image_follows_the_crop():
    """Map cell (row, col) covers the image through the crop window: check cell centres one by one."""
    height, width, m = 300, 400, 8
    center, scale = np.array([250.0, 140.0]), 1.0  # a 200-pixel window
    matrix = crop_transform(center, scale, inference.LOADER_CROP)
    iuv = np.zeros((m, m, 3), np.uint8)
    iuv[2:6, 1:4, 0], iuv[2:6, 4:7, 0] = 3, 11
    iuv[..., 1] = np.arange(m)[None, :] * 30  # U grows with the column
    part, u, _ = inference.iuv_in_image(iuv, matrix, (height, width))
    assert part.shape == (height, width) and u.shape == (height, width)
    inverse = cv2.invertAffineTransform(matrix)
    for row in range(m):
        for col in range(m):
            crop_xy = (np.array([col, row]) + 0.5) * inference.LOADER_CROP / m - 0.5  # the cell's centre
            x, y = inverse @ np.append(crop_xy, 1.0)
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= xi < width and 0 <= yi < height):
                continue
            if 3 <= row <= 4 and col in (2, 5):  # well inside a part: its label and its U
                assert part[yi, xi] == iuv[row, col, 0]
                assert abs(u[yi, xi] - iuv[row, col, 1] / 255.0) < 0.2 / 255 * 30 + 0.01
            if row in (0, 7) or col == 0:
                assert part[yi, xi] == 0
    assert set(np.unique(part)) == {0, 3, 11}


def test_colour_bar_ends_are_the_colour_map_ends():
    bar = annotate.colour_bar(200, "U", 0.0, 1.0, cv2.COLORMAP_JET, height=30)
    assert bar.shape == (30, 200, 3)
    jet = cv2.applyColorMap(np.array([[0], [255]], np.uint8), cv2.COLORMAP_JET)[:, 0, ::-1]
    assert np.array_equal(bar[5, 6], jet[0]) and np.array_equal(bar[5, 200 - 7], jet[1])


def test_legend_and_headers_have_their_size():
    names = [f"part{i}" for i in range(24)]
    legend = annotate.part_legend(names, annotate.part_colours_u8()[1:], width=480, columns=4, row_height=16)
    assert legend.shape == (6 * 16 + 4, 480, 3)
    swatch = legend[2 + 16 + 6, 4 + 6]  # part 5's swatch: second row, first column
    assert np.array_equal(swatch, annotate.part_colours_u8()[5])
    header = annotate.header_row(["a", "b", "c"], 100, height=28)
    assert header.shape == (28, 300, 3) and (header != header[0, 0]).any()


def test_box_outside_image():
    assert inference.box_outside_image((10, 10, 5, 5), 100, 100) is None
    assert inference.box_outside_image((-50, -50, 60, 60), 100, 100) is None  # partly inside
    assert "entirely outside the 100x80 image" in inference.box_outside_image((100, 10, 5, 5), 80, 100)
    assert inference.box_outside_image((-20, 10, 10, 5), 80, 100) is not None


# -- the predict stage --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    from model.training.config import load_train_config
    from model.training.loop import Trainer
    from stages.synthesize import main as synthesize

    root = tmp_path_factory.mktemp("first_hour_predict")
    cfg = load_train_config(None, ["model.preset=tiny", "model.overrides.image_size=64", "run.device=cpu"])
    checkpoint = Trainer(cfg, root / "run").save("model.pt")
    assert synthesize(["--out", str(root / "synth"), "--n", "2", "--size", "96", "--no-progress"]) == 0
    photos = root / "photos"
    photos.mkdir()
    for i, path in enumerate(sorted((root / "synth" / "images").rglob("*.jpg"))):
        shutil.copy(path, photos / f"p{i}.jpg")
    return {"checkpoint": str(checkpoint), "photos": photos}


def run_predict(args, capsys) -> tuple[int, dict, str]:
    from stages.predict import main as predict

    rc = predict([*args, "--no-progress", "--device", "cpu"])
    out = capsys.readouterr()
    return rc, json.loads(out.out.strip().splitlines()[-1]), out.err


def test_warning_pictures_and_boxes_json_in_folder(setup, capsys, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(setup["photos"], photos)
    (photos / "boxes.json").write_text(json.dumps([{"image": "p0.jpg", "bbox": [20, 10, 40, 70]}]))
    rc, summary, err = run_predict(
        [
            "--checkpoint",
            setup["checkpoint"],
            str(photos),
            "--boxes",
            str(photos / "boxes.json"),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 0 and summary["failed"] == 0 and summary["images"] == 2  # boxes.json is not an image
    assert "WARNING" in err and "synthetic" in err and "synth/train" in err
    assert "never a photograph" in summary["warning"]
    params = json.loads((tmp_path / "o" / "p0" / "person0_params.json").read_text())
    assert params["training"]["real_images_seen"] is False and "never a photograph" in params["warning"]
    image = cv2.imread(str(photos / "p0.jpg"))
    vis = cv2.imread(str(tmp_path / "o" / "p0" / "person0_iuv_vis.png"))
    side = cv2.imread(str(tmp_path / "o" / "p0" / "person0_side.png"))
    assert vis.shape == image.shape and side.shape == (image.shape[0], image.shape[0], 3)
    overlay = cv2.imread(str(tmp_path / "o" / "p0" / "person0_overlay.png"))[..., ::-1]
    green = np.all(overlay == (80, 255, 80), axis=-1)  # the box's outline, drawn exactly in its colour
    rows, cols = np.nonzero(green)
    assert len(rows) > 20 and abs(cols.min() - 20) <= 2 and abs(cols.max() - 60) <= 2


def test_box_outside_and_unmatched_box_file_exit_1(setup, capsys, tmp_path):
    photo = str(setup["photos"] / "p0.jpg")
    rc, summary, err = run_predict(
        ["--checkpoint", setup["checkpoint"], photo, "--bbox", "500,500,20,20", "--out", str(tmp_path)],
        capsys,
    )
    assert rc == 1 and summary["persons"] == 0 and "entirely outside the 96x96 image" in err
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image": "elsewhere.jpg", "bbox": [0, 0, 5, 5]}]))
    from stages.predict import main as predict

    rc = predict(
        [
            "--checkpoint",
            setup["checkpoint"],
            photo,
            "--boxes",
            str(boxes),
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "none of its 1 boxes matches an input image" in err


def test_example_grid_titles_errors_and_legend():
    from model.visualize import EXAMPLE_COLUMNS, MIN_TILE, example_grid

    size, m = 64, 16
    logits = torch.full((25, m, m), -5.0)
    logits[0] = 5.0
    logits[0, 4:12, 6:10], logits[2, 4:12, 6:10] = -5.0, 5.0  # part 2 in a block
    example = {
        "image": torch.full((3, size, size), 100, dtype=torch.uint8),
        "iuv": torch.zeros(3, size, size),
        "pred": {
            "index_logits": logits, "u": torch.zeros(25, m, m), "v": torch.zeros(25, m, m),
            "cam": torch.tensor([0.9, 0.0, 0.0]),
            "vertices": torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]]),
        },
    }  # fmt: skip
    faces = torch.tensor([[0, 1, 2]])
    plain = example_grid([example, example], faces)
    labelled = example_grid([example, example], faces, [87.4, float("nan")])
    tile = MIN_TILE
    assert plain.shape[1] == len(EXAMPLE_COLUMNS) * tile and plain.shape == labelled.shape
    header = 28
    # the predicted-parts tile shows part 2's colour where the block is (rows 4..11, cols 6..9 of 16)
    y, x = header + int(8 / m * tile), 2 * tile + int(8 / m * tile)
    assert np.array_equal(labelled[y, x], annotate.part_colours_u8()[2])
    # the error is written on the first row's input tile only, and nothing is written for a NaN
    first, second = (slice(header + r * tile, header + r * tile + 40) for r in (0, 1))
    assert (labelled[first, :tile] != plain[first, :tile]).any()
    assert np.array_equal(labelled[second, :tile], plain[second, :tile])
    assert plain.shape[0] > header + 2 * tile  # the legend below


def test_render_demo_has_headers_bars_and_legend():
    from pipeline.render.demo import demo_panel

    size = 64
    panel, _ = demo_panel(size=size, backend="torch")
    header, rows = 28, 6
    bar_top = header + rows * size
    jet = cv2.applyColorMap(np.array([[0], [255]], np.uint8), cv2.COLORMAP_JET)[:, 0, ::-1]
    assert np.array_equal(panel[bar_top + 5, 2 * size + 6], jet[0])  # U's bar starts at 0 ...
    assert np.array_equal(panel[bar_top + 5, 3 * size - 7], jet[1])  # ... and ends at 1
    assert np.array_equal(panel[bar_top + 5, 3 * size + 6], jet[0])  # V's too
    assert (panel[:header] != annotate.STRIP_BACKGROUND).any()  # the column titles
    assert panel.shape[0] > bar_top + 30 and panel.shape[1] == 4 * size
