"""Fault suite, fetch: a server that keeps sending bytes other than the manifest names is not asked again
on every rerun, nor does each rerun keep another copy; an HTML page saved under an archive's name is moved
aside with a message that says what it is."""

from __future__ import annotations

import hashlib
from pathlib import Path

from stages import fetch as fetch_stage
from tests.fixtures_data.http_server import ServerState, serve
from tests.test_fetch import _write_source

GOOD = b"the published bytes" * 1000
WRONG = b"other bytes, same length" * 790


def _argv(tmp_path: Path) -> list[str]:
    raw, src = str(tmp_path / "raw"), str(tmp_path / "src")
    return ["--dataset", "toy", "--root", raw, "--sources", src, "--no-progress", "--retries", "0"]


def test_a_persistent_checksum_mismatch_is_downloaded_once_and_kept_once(tmp_path, capsys):
    state = ServerState({"/blob.bin": WRONG})
    root = tmp_path / "raw" / "toy"
    with serve(state) as base:
        entry = {"path": "blob.bin", "url": f"{base}/blob.bin", "sha256": hashlib.sha256(GOOD).hexdigest()}
        _write_source(tmp_path / "src", "toy", [entry])
        assert fetch_stage.main(_argv(tmp_path)) == 1
        out = capsys.readouterr().out
        assert "[bad]" in out and "sha256 is" in out and "will not download it again" in out
        assert len(state.requests) == 1
        for _ in range(2):  # reruns: no request, no new copy, the same clear message, still exit 1
            assert fetch_stage.main(_argv(tmp_path)) == 1
            out = capsys.readouterr().out
            assert "not downloading it again" in out and "delete blob.bin.bad-" in out
        assert len(state.requests) == 1
        copies = list(root.glob("blob.bin.bad-*"))
        assert len(copies) == 1 and copies[0].read_bytes() == WRONG  # the evidence kept, once
        copies[0].unlink()  # the user's way to try once more: the server now has the right file
        state.files["/blob.bin"] = GOOD
        assert fetch_stage.main(_argv(tmp_path)) == 0
        assert len(state.requests) == 2
    assert (root / "blob.bin").read_bytes() == GOOD
    assert fetch_stage.main(_argv(tmp_path)) == 0  # verified: neither downloaded nor flagged again


def test_an_html_page_under_an_archive_name_is_moved_aside(tmp_path, capsys):
    page = b"<!DOCTYPE html>\n<html><body>Please log in to download this dataset</body></html>\n"
    state = ServerState({"/set.zip": page})
    root = tmp_path / "raw" / "toy"
    with serve(state) as base:
        entry = {"path": "set.zip", "url": f"{base}/set.zip", "extract": True, "extract_to": "unpacked"}
        _write_source(tmp_path / "src", "toy", [entry])
        assert fetch_stage.main(_argv(tmp_path)) == 1
        out = capsys.readouterr().out
        assert "should be an archive to extract but is an HTML page" in out and "moved it aside" in out
        assert not (root / "set.zip").exists() and not (root / "unpacked").exists()
        assert [p.read_bytes() for p in root.glob("set.zip.bad-*")] == [page]
        assert fetch_stage.main(_argv(tmp_path)) == 1
        assert "not downloading it again" in capsys.readouterr().out
        assert len(state.requests) == 1
    assert not [p for p in root.iterdir() if p.name.startswith(".extract-")]
