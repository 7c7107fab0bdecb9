"""pipeline.files: the one atomic write and the one file digest."""

import os
import stat

import pytest

from pipeline import files


def test_write_replaces_whole_file_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "out.json"
    old = os.umask(0o022)
    try:
        files.atomic_write_text(target, "first")
        files.atomic_write_bytes(target, b"second")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert files.stale_temp_files(target.parent) == []


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError), files.atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"good"
    assert list(tmp_path.iterdir()) == [target]


def test_temporary_siblings_are_distinct_and_found_as_stale(tmp_path):
    target = tmp_path / "index.json"
    a, b = files.temp_sibling(target), files.temp_sibling(target)
    assert a != b and a.parent == b.parent == tmp_path
    assert a.name.startswith(".index.json.") and a.name.endswith(".tmp")
    assert files.stale_temp_files(tmp_path) == sorted([a, b])


def test_file_digest_known_vectors(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")  # FIPS 180-2 / RFC 1321 test vectors
    assert files.file_digest(path, "md5") == "900150983cd24fb0d6963f7d28e17f72"
    assert files.file_digest(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big"
    big.write_bytes(b"a" * (files.CHUNK + 7))  # spans two reads
    import hashlib

    assert files.file_digest(big, "sha256") == hashlib.sha256(b"a" * (files.CHUNK + 7)).hexdigest()
