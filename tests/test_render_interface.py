"""The renderer interface of the render stage (pipeline/renderers.py): which specs name a renderer, what each
factory is built with, and what a renderer that breaks the interface leads to."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline import shards as fmt
from pipeline.body.spec import BodySpec
from pipeline.render_job import render_dataset
from pipeline.renderers import (
    DEFAULT_RENDERER,
    RendererFactory,
    RendererSpecError,
    find_renderer,
    load_renderer,
)
from pipeline.shard_build import ShardParams
from tests.fixtures_data import renderers as doubles
from tests.test_shards_helpers import make_rows, write_manifest

FIXTURES = "tests.fixtures_data.renderers"
BODY = BodySpec(model="anny-smpl24")


@pytest.mark.parametrize(
    "spec",
    [
        "keypoint_disk_renderer",  # no module
        f"{FIXTURES}:",  # no name
        ":keypoint_disk_renderer",
        f"{FIXTURES}:_recording_build",  # private
        "../tests/fixtures_data/renderers:keypoint_disk_renderer",  # a path
        ".fixtures_data.renderers:keypoint_disk_renderer",  # relative import
        f"{FIXTURES}:keypoint_disk_renderer:extra",
        f"{FIXTURES}:keypoint_disk_renderer.__call__",
        "",
    ],
)
def test_a_malformed_spec_is_refused_naming_it(spec):
    with pytest.raises(RendererSpecError, match="module:function") as err:
        find_renderer(spec)
    assert repr(spec) in str(err.value)


def test_a_missing_module_or_name_is_refused_naming_the_spec():
    with pytest.raises(RendererSpecError, match="cannot be imported") as err:
        find_renderer("tests.fixtures_data.no_such_module:render")
    assert "'tests.fixtures_data.no_such_module:render'" in str(err.value)
    with pytest.raises(RendererSpecError, match=f"{FIXTURES} has no nope") as err:
        find_renderer(f"{FIXTURES}:nope")
    assert f"'{FIXTURES}:nope'" in str(err.value)


@pytest.mark.parametrize(
    ("name", "why"), [("NOT_CALLABLE", "a tuple, not callable"), ("RendererClass", "a class")]
)
def test_an_object_that_is_not_a_renderer_is_refused_naming_the_spec(name, why):
    with pytest.raises(RendererSpecError, match=why) as err:
        load_renderer(f"{FIXTURES}:{name}", "cpu", BODY)
    assert f"'{FIXTURES}:{name}'" in str(err.value) and "docs/design.md" in str(err.value)


def test_a_factory_that_builds_no_renderer_is_refused_naming_the_spec():
    with pytest.raises(RendererSpecError, match="factory returned str, not a renderer") as err:
        load_renderer(f"{FIXTURES}:builds_no_renderer", "cpu", BODY)
    assert f"'{FIXTURES}:builds_no_renderer'" in str(err.value)


def test_a_factory_can_only_declare_the_known_settings():
    with pytest.raises(ValueError, match="gpu"):
        RendererFactory(doubles.keypoint_disk_renderer, takes=frozenset({"device", "gpu"}))


def test_a_plain_renderer_is_used_as_it_is():
    assert load_renderer(doubles.KEYPOINT_DISK, "cuda", BODY) is doubles.keypoint_disk_renderer


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("takes_nothing", {}),
        ("takes_device", {"device": "cpu"}),
        ("takes_body", {"body": BODY}),
        ("takes_both", {"device": "cpu", "body": BODY}),
    ],
)
def test_each_factory_is_built_with_exactly_the_settings_it_declares(name, expected):
    """The build functions have keyword-only parameters without defaults: one setting too many or too few
    is a TypeError, so the recorded call is the whole call."""
    doubles.BUILT_WITH.clear()
    renderer = load_renderer(f"{FIXTURES}:{name}", "cpu", BODY)
    assert doubles.BUILT_WITH == [expected]
    assert renderer is doubles.keypoint_disk_renderer


def test_the_default_spec_renders_with_the_smpl_renderer_given_the_device_and_the_body(monkeypatch):
    import pipeline.render.manifest_iuv as manifest_iuv

    calls = []

    def recording(rows, crop_transforms, crop_size, **settings):
        calls.append((rows, crop_transforms, crop_size, settings))
        return [None] * len(rows)

    monkeypatch.setattr(manifest_iuv, "render_manifest_iuv", recording)
    rows, transforms = [{"has_smpl": False}], [np.eye(2, 3)]
    assert load_renderer(DEFAULT_RENDERER, "cpu", BODY)(rows, transforms, 16) == [None]
    assert calls == [(rows, transforms, 16, {"device": "cpu", "body": BODY})]


@pytest.fixture
def toy(tmp_path):
    rows = make_rows(6)
    manifest, images = write_manifest(tmp_path, rows)
    return tmp_path, manifest, images


def _render(toy, renderer: str, out_name: str = "out") -> dict:
    root, manifest, images = toy
    params = ShardParams("toy", "train", shard_size=4, crop_size=32, renderer=renderer, body=BODY)
    return render_dataset(manifest, images, root / out_name, params, workers=0, device="cpu", progress=False)


def test_index_json_records_the_body_files_exactly_when_the_renderer_takes_them(toy):
    _render(toy, f"{FIXTURES}:takes_body", "with_body")
    _render(toy, f"{FIXTURES}:takes_device", "without_body")
    recorded = json.loads((toy[0] / "with_body" / "index.json").read_text())["params"]["body"]
    assert recorded == json.loads(json.dumps(BODY.identity()))
    assert recorded["model"] == "anny-smpl24"
    assert json.loads((toy[0] / "without_body" / "index.json").read_text())["params"]["body"] is None


def test_a_bad_spec_stops_render_dataset_before_it_writes_anything(toy):
    with pytest.raises(RendererSpecError, match="RendererClass"):
        _render(toy, f"{FIXTURES}:RendererClass")
    assert not (toy[0] / "out").exists()


def test_maps_of_the_wrong_size_make_each_smpl_row_a_reject_naming_it(toy):
    summary = _render(toy, f"{FIXTURES}:wrong_shape_renderer")
    rows = make_rows(6)
    with_smpl = sorted(r["sample_id"] for r in rows if r["has_smpl"])
    assert summary["samples"] == 6 - len(with_smpl) and summary["rejects"] == len(with_smpl)
    rejects = fmt.read_index(toy[0] / "out")["rejects"]
    assert sorted(r["key"] for r in rejects) == with_smpl
    assert all("renderer returned (31, 32, 3) uint8" in r["reason"] for r in rejects)


def test_the_stage_refuses_a_bad_renderer_spec_with_one_line_and_exit_2(toy, capsys):
    from stages.render_iuv import main

    root, manifest, images = toy
    spec = f"{FIXTURES}:NOT_CALLABLE"
    argv = ["--dataset", "toy", "--root", str(images), "--manifests", str(manifest.parents[1]),
            "--out", str(root / "shards"), "--workers", "0", "--device", "cpu", "--renderer", spec]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("render_iuv: --renderer: ") and repr(spec) in err[0]
    assert not (root / "shards").exists()


def test_the_render_job_cli_stops_on_a_bad_spec_naming_it(toy):
    import argparse

    from pipeline.render_job import add_dataset_arguments, main_dataset

    root, manifest, images = toy
    spec = f"{FIXTURES}:nope"
    args = add_dataset_arguments(argparse.ArgumentParser()).parse_args(
        ["--dataset", "toy", "--root", str(images), "--manifests", str(manifest.parents[1]),
         "--out", str(root / "shards"), "--renderer", spec]
    )  # fmt: skip
    with pytest.raises(SystemExit, match="has no nope") as err:
        main_dataset(args)
    assert repr(spec) in str(err.value.code) and not (root / "shards").exists()
