"""stages.fetch against a local HTTP server: resume, checksums, idempotency, extraction, login-gated files."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
import yaml

from pipeline.datasets.download import DownloadError, download, extract_archive, fetch_source
from pipeline.datasets.sources import load_source
from stages import fetch as fetch_stage
from tests.fixtures_data.http_server import ServerState, serve

BLOB = bytes(range(256)) * 4096  # 1 MiB, more than one read chunk would need to be cut
SHA = hashlib.sha256(BLOB).hexdigest()


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _write_source(sources: Path, name: str, files: list[dict], login: bool = False) -> None:
    sources.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "title": "test set",
        "licence": "test only",
        "licence_url": None,
        "login_required": login,
        "files": files,
    }
    (sources / f"{name}.yaml").write_text(yaml.safe_dump(doc))


def test_download_resumes_after_cut_off_transfer(tmp_path: Path) -> None:
    state = ServerState({"/blob.bin": BLOB}, cut_after={"/blob.bin": 300_000})
    with serve(state) as base:
        dest = tmp_path / "blob.bin"
        with pytest.raises(DownloadError, match="rerun to resume"):
            download(f"{base}/blob.bin", dest, progress=False)
        part = tmp_path / "blob.bin.part"
        assert not dest.exists() and part.stat().st_size == 300_000
        download(f"{base}/blob.bin", dest, progress=False)
    assert dest.read_bytes() == BLOB and not part.exists()
    assert state.requests == [("/blob.bin", None), ("/blob.bin", "bytes=300000-")]


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path) -> None:
    (tmp_path / "blob.bin.part").write_bytes(b"garbage that is not the start")
    state = ServerState({"/blob.bin": BLOB}, ignore_range=True)
    with serve(state) as base:
        download(f"{base}/blob.bin", tmp_path / "blob.bin", progress=False)
    assert (tmp_path / "blob.bin").read_bytes() == BLOB


def test_fetch_verifies_extracts_and_is_idempotent(tmp_path: Path) -> None:
    archive = _zip_bytes({"images/im0001.jpg": b"jpeg", "joints.txt": b"1 2 3"})
    state = ServerState({"/blob.bin": BLOB, "/set.zip": archive}, cut_after={"/blob.bin": 12345})
    with serve(state) as base:
        _write_source(
            tmp_path / "src",
            "toy",
            [
                {"path": "blob.bin", "url": f"{base}/blob.bin", "sha256": SHA, "size": len(BLOB)},
                {"path": "set.zip", "url": f"{base}/set.zip", "extract": True, "extract_to": "unpacked"},
            ],
        )
        source = load_source("toy", tmp_path / "src")
        report = fetch_source(source, tmp_path / "raw", retries=1, progress=False)
        assert report.ok, report.results
        root = tmp_path / "raw" / "toy"
        assert (root / "blob.bin").read_bytes() == BLOB
        assert (root / "unpacked" / "images" / "im0001.jpg").read_bytes() == b"jpeg"
        n_requests = len(state.requests)
        assert ("/blob.bin", "bytes=12345-") in state.requests  # the retry resumed, not restarted

        os.utime(root / "unpacked" / "joints.txt", (1, 1))  # an extracted file left as it is
        report = fetch_source(source, tmp_path / "raw", progress=False)
        assert report.ok and [r.status for r in report.results] == ["ok", "ok"]
        assert len(state.requests) == n_requests  # nothing downloaded again
        assert (root / "unpacked" / "joints.txt").stat().st_mtime == 1  # nor extracted again


def test_checksum_mismatch_moves_bad_file_aside_then_redownloads(tmp_path: Path, capsys) -> None:
    root = tmp_path / "raw" / "toy"
    root.mkdir(parents=True)
    (root / "blob.bin").write_bytes(b"x" * len(BLOB))  # right size, wrong bytes
    state = ServerState({"/blob.bin": BLOB})
    with serve(state) as base:
        entry = {"path": "blob.bin", "url": f"{base}/blob.bin", "sha256": SHA}
        _write_source(tmp_path / "src", "toy", [entry])
        argv = ["--dataset", "toy", "--root", str(tmp_path / "raw"), "--sources", str(tmp_path / "src")]
        assert fetch_stage.main([*argv, "--no-progress"]) == 1
        out = capsys.readouterr().out
        assert "[bad]" in out and "sha256 is" in out and "moved it aside" in out
        bad = list(root.glob("blob.bin.bad-*"))
        assert len(bad) == 1 and bad[0].read_bytes() == b"x" * len(BLOB)  # kept, not deleted
        assert state.requests == []
        assert fetch_stage.main([*argv, "--no-progress"]) == 0
    assert (root / "blob.bin").read_bytes() == BLOB


def test_login_gated_files_are_verified_and_instructions_printed(tmp_path: Path, capsys) -> None:
    payload = b"user-placed archive"
    files = [
        {
            "path": "archives/Poses_S1.tgz",
            "sha256": hashlib.sha256(payload).hexdigest(),
            "place": "Download 'Poses S1' from the H36M site after logging in.",
        },
        {"path": "images", "kind": "directory", "glob": "*.jpg", "min_files": 2, "place": "frames here"},
    ]
    _write_source(tmp_path / "src", "gated", files, login=True)
    argv = ["--dataset", "gated", "--root", str(tmp_path / "raw"), "--sources", str(tmp_path / "src")]
    assert fetch_stage.main(argv) == 1
    out = capsys.readouterr().out
    root = tmp_path / "raw" / "gated"
    assert f"place the file {root / 'archives/Poses_S1.tgz'}" in out
    assert "Download 'Poses S1'" in out and f"place a folder {root / 'images'}" in out

    (root / "archives").mkdir(parents=True)
    (root / "archives" / "Poses_S1.tgz").write_bytes(b"corrupted")
    (root / "images").mkdir()
    (root / "images" / "a.jpg").write_bytes(b"")
    assert fetch_stage.main(argv) == 1
    out = capsys.readouterr().out
    assert "sha256 is" in out and "need 2" in out
    assert list((root / "archives").glob("Poses_S1.tgz.bad-*"))

    (root / "archives" / "Poses_S1.tgz").write_bytes(payload)
    (root / "images" / "b.jpg").write_bytes(b"")
    assert fetch_stage.main(argv) == 0
    assert "[placed]" in capsys.readouterr().out


def test_extract_refuses_members_outside_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip_bytes({"../escape.txt": b"x"}))
    with pytest.raises(ValueError, match="outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_help_explains_the_stage(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        fetch_stage.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "resume" in out and "login" in out and "--sources" in out
