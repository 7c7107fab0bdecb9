"""Source manifests: every checked-in manifest loads; malformed ones fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.datasets.sources import SourceError, list_sources, load_source

EXPECTED = {
    "h36m", "up3d", "coco", "densepose_coco", "3dpw", "lsp", "lsp_extended", "mpii", "mpi_inf_3dhp",
    "spin_extras",
}  # fmt: skip


def test_all_checked_in_manifests_load() -> None:
    assert EXPECTED <= set(list_sources())
    for name in EXPECTED:
        src = load_source(name)
        assert src.licence and src.files
        for f in src.files:
            if f.login_required:
                assert f.place, f"{name}: {f.path} needs placement instructions"
            elif f.kind == "file":
                assert f.url.startswith(("http://", "https://"))
    assert load_source("h36m").login_required
    assert {s.format for n in EXPECTED for s in load_source(n).splits} == {
        "spin_npz", "pw3d_pkl", "up3d", "coco_json",
    }  # fmt: skip


def _write(tmp_path: Path, doc: dict, name: str = "toy") -> Path:
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


GOOD = {
    "name": "toy",
    "title": "t",
    "licence": "l",
    "licence_url": None,
    "login_required": False,
    "files": [{"path": "a.zip", "url": "http://127.0.0.1/a.zip", "extract": True}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": [{"path": "a.zip", "url": "http://x/a", "sha256": "XYZ"}]}, r"files\[0\]\.sha256"),
        ({"files": [{"path": "a.zip"}]}, r"files\[0\]\.url: required"),
        ({"files": [{"path": "../a.zip", "url": "http://x/a"}]}, r"files\[0\]\.path"),
        ({"files": [{"path": "a.bin", "url": "http://x/a", "extract": True}]}, r"files\[0\]\.extract"),
        ({"files": [{"path": "a", "url": "http://x/a", "size": "12"}]}, r"files\[0\]\.size: expected int"),
        ({"licence": None}, r"\.licence: expected str"),
        ({"name": "other"}, r"\.name: 'other' must equal"),
        ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"login_required": True, "files": [{"path": "a.npz"}]}, r"files\[0\]\.place"),
        (
            {"ingest": {"splits": [{"split": "t", "format": "csv", "annotations": "x"}]}},
            r"ingest\.splits\[0\]\.format",
        ),
    ],
)
def test_bad_manifest_errors_name_file_and_field(tmp_path: Path, change: dict, message: str) -> None:
    d = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(SourceError, match=message) as e:
        load_source("toy", d)
    assert str(tmp_path / "toy.yaml") in str(e.value)


def test_unknown_dataset_lists_known_ones(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    with pytest.raises(SourceError, match=r"no source manifest for dataset 'nope' \(known: toy\)"):
        load_source("nope", tmp_path)
