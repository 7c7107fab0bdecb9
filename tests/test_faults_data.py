"""Fault suite, data: images must be whole, a damaged shard sample is skipped and counted (not trained on),
one bad manifest row is a reject naming it (not the end of the split), a render that produced nothing says
so with a non-zero exit, and bad render knobs are one line. Each test asserts what the user sees."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline import loader as L
from pipeline import shards as fmt
from pipeline.augment import AugmentConfig
from pipeline.datasets.images import image_problem, read_image
from tests.fixtures_data.synth_chain import synth_manifests

PLAIN = AugmentConfig(enabled=False)


def _photo(seed: int = 0, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A smooth picture (JPEG-like content, unlike noise)."""
    rng = np.random.default_rng(seed)
    small = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    return cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC)


# -- whole images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]])
def test_a_jpeg_cut_to_40_percent_is_refused_although_opencv_reads_it(flags, tmp_path):
    data = cv2.imencode(".jpg", _photo(), flags)[1].tobytes()
    assert image_problem(data) is None
    assert image_problem(data + b"\0trailing bytes after EOI") is None  # cameras append such; still whole
    cut = data[: int(len(data) * 0.4)]
    (tmp_path / "cut.jpg").write_bytes(cut)
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # the silent failure: grey fill, a warning
    assert "truncated" in image_problem(cut)
    assert "truncated" in image_problem(data[:-2])  # everything but the end-of-image marker


def test_a_png_with_one_flipped_bit_or_cut_short_is_refused():
    data = cv2.imencode(".png", _photo())[1].tobytes()
    assert image_problem(data) is None
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    assert "fails its CRC" in image_problem(bytes(flipped))
    assert "truncated" in image_problem(data[: len(data) // 2])


def test_read_image_names_the_reason(tmp_path):
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), _photo())
    np.testing.assert_array_equal(read_image(good), cv2.imread(str(good)))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated"):
        read_image(cut)
    with pytest.raises(ValueError, match="file not found"):
        read_image(tmp_path / "nothing.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"<html>not an image</html>")
    with pytest.raises(ValueError, match="cannot be decoded"):
        read_image(tmp_path / "junk.jpg")


# -- the demo chain at toy size -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """12 synthetic people (64 px) ingested into manifests: the demo chain at toy size."""
    return synth_manifests(tmp_path_factory.mktemp("data"), n=12, size=64)


def render(raw: Path, out: Path, *extra: str, root: Path | None = None) -> int:
    from stages.render_iuv import main as render_iuv

    args = ["--dataset", "synth", "--root", str(root or raw / "raw" / "synth"), "--manifests"]
    args += [
        str(raw / "manifests"),
        "--out",
        str(out),
        "--workers",
        "0",
        "--crop-size",
        "64",
        "--no-progress",
    ]
    return render_iuv([*args, "--split", "train", *extra])


def copy_dataset(raw: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(raw / "raw", dst / "raw")
    shutil.copytree(raw / "manifests", dst / "manifests")
    return dst


@pytest.mark.slow
def test_one_bad_row_is_a_reject_naming_it_and_the_split_goes_on(raw, tmp_path):
    """A truncated image and a row without any visible keypoint (LinAlgError for the whole split before)."""
    data = copy_dataset(raw, tmp_path)
    manifest = data / "manifests" / "synth" / "train.parquet"
    table = pq.read_table(manifest)
    rows = table.to_pylist()
    blind, cut = rows[1]["sample_id"], rows[2]["sample_id"]
    kp2d = np.asarray(rows[1]["kp2d"], np.float32).reshape(24, 3)
    kp2d[:, 2] = 0.0
    rows[1]["kp2d"] = kp2d.reshape(-1).tolist()
    pq.write_table(table.from_pylist(rows, schema=table.schema), manifest)
    image = data / "raw" / "synth" / rows[2]["image_path"]
    image.write_bytes(image.read_bytes()[: int(image.stat().st_size * 0.4)])

    assert render(data, data / "shards", "--shard-size", "4") == 0
    folder = data / "shards" / "synth" / "train"
    index = fmt.read_index(folder)
    reasons = {r["key"]: r["reason"] for r in index["rejects"]}
    assert set(reasons) == {blind, cut}
    assert "0 visible 2D keypoint(s)" in reasons[blind] and "needs at least 2" in reasons[blind]
    assert "unreadable" in reasons[cut] and "truncated" in reasons[cut]
    assert index["samples"] == len(rows) - 2
    from stages.verify_shards import main as verify

    assert verify([str(folder)]) == 0


@pytest.mark.slow
def test_a_flipped_byte_in_a_shard_is_a_skipped_counted_sample(raw, tmp_path, capsys):
    out = tmp_path / "shards"
    assert render(raw, out) == 0
    folder = out / "synth" / "train"
    shard = folder / fmt.read_index(folder)["shards"][0]["name"]
    with tarfile.open(shard) as tar:
        members = [m for m in tar if m.name.endswith(".jpg")]
        victim = members[1]
    data = bytearray(shard.read_bytes())
    at = victim.offset_data + victim.size // 2
    while data[at] in (0xFE, 0xFF) or data[at - 1] == 0xFF:  # flip a bit that makes no marker
        at += 1
    good_keys = sorted({m.name.partition(".")[0] for m in members} - {victim.name.partition(".")[0]})
    data[at] ^= 0x01  # one bit inside the entropy-coded data: the JPEG still decodes, to other pixels
    shard.write_bytes(bytes(data))
    jpg = bytes(data[victim.offset_data : victim.offset_data + victim.size])
    assert image_problem(jpg) is None and cv2.imdecode(np.frombuffer(jpg, np.uint8), 1) is not None

    before = L.SKIPPED.count
    dataset = L.make_dataset([folder], batch_size=4, augment=PLAIN, shuffle=False, onehot=False)
    keys = sorted(k for batch in dataset for k in batch["key"])
    assert keys == good_keys and L.SKIPPED.count - before == 1
    from stages.verify_shards import main as verify

    capsys.readouterr()
    assert verify([str(folder)]) == 1
    report = capsys.readouterr().out
    assert f"{victim.name.partition('.')[0]}: checksum mismatch" in report and "md5" in report


@pytest.mark.slow
def test_shards_stay_byte_reproducible_and_leftover_temp_files_go(raw, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert render(raw, first, "--shard-size", "5") == 0
    folder = second / "synth" / "train"
    folder.mkdir(parents=True)
    (folder / ".index.json.k1ll3d.tmp").write_bytes(b'{"half": ')  # what a SIGKILL mid-write leaves
    assert render(raw, second, "--shard-size", "5") == 0
    tars = sorted(p.name for p in (first / "synth" / "train").glob("*.tar"))
    assert tars and tars == sorted(p.name for p in folder.glob("*.tar"))
    for name in [*tars, "index.json"]:
        assert (first / "synth" / "train" / name).read_bytes() == (folder / name).read_bytes(), name
    assert not list(folder.glob(".*.tmp"))
    with tarfile.open(folder / tars[0]) as tar:
        names = tar.getnames()
    assert any(n.endswith(".sha256") for n in names)
    sample = next(fmt.tar_samples(folder / tars[0]))
    assert fmt.checksum_problem(sample) is None and fmt.CHECKSUM_EXT in sample


@pytest.mark.slow
def test_a_render_that_produced_nothing_exits_1_saying_why(raw, tmp_path, capsys):
    assert render(raw, tmp_path / "shards", root=tmp_path) == 1  # --root: a folder without the images
    err = capsys.readouterr().err
    assert "produced nothing" in err and "every row was rejected" in err and "file not found" in err
    assert "--root" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--shard-size", "0", "--shard-size must be at least 1, got 0"),
        ("--crop-size", "4", "--crop-size must be at least 8"),
        ("--margin", "0.5", "--margin must be at least 1"),
    ],
)
def test_render_knobs_are_checked_up_front(tmp_path, capsys, flag, value, message):
    from stages.render_iuv import main as render_iuv

    args = [
        "--dataset",
        "synth",
        "--root",
        str(tmp_path),
        "--manifests",
        str(tmp_path),
        "--out",
        str(tmp_path),
    ]
    assert render_iuv([*args, flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "synth").exists()


def test_a_missing_root_is_one_line(tmp_path, capsys):
    from stages.render_iuv import main as render_iuv

    args = ["--dataset", "synth", "--root", str(tmp_path / "nope"), "--manifests", str(tmp_path)]
    assert render_iuv([*args, "--out", str(tmp_path)]) == 2
    assert "nope is not a folder" in capsys.readouterr().err
