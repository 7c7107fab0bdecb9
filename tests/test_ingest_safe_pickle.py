"""Pickles from outside never run code: every path that unpickles refuses a payload, and no marker appears.

The payload is a live one: a plain ``pickle.loads`` of the same bytes does create the marker file (checked
first), so a refusal here means the restricted unpickler stopped it, not that the payload was inert.
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse

from pipeline.body.smpl_io import BodyModelFileError, read_smpl_file
from pipeline.datasets.ingest import ingest_dataset
from pipeline.datasets.schema import read_manifest
from pipeline.datasets.sources import load_source
from pipeline.safe_pickle import ChumpyStub, FileReadError, UnsafePickleError, load_npz, load_pickle, loads
from tests.fixtures_data import up3d as up3d_fx
from tests.fixtures_data.pw3d import sequence_dict, write_sequence
from tests.fixtures_data.py2pickle import dump_py2
from tests.fixtures_data.spin import spin_arrays, write_images, write_npz


class _Payload:
    """Unpickling this object runs ``os.system('touch MARKER')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _OpenPayload(_Payload):
    """Unpickling this object calls ``open(MARKER, 'w')`` (a builtin, not an os function)."""

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture(params=[_Payload, _OpenPayload], ids=["os.system", "builtins.open"])
def payload(request, tmp_path: Path):
    marker = tmp_path / "MARKER"
    obj = request.param(marker)
    pickle.loads(pickle.dumps(obj, protocol=2))  # the payload is live...
    assert marker.exists()
    marker.unlink()  # ...and from here on must never run again
    return obj, marker


def test_numpy_sparse_and_containers_round_trip_at_every_protocol() -> None:
    import collections

    value = {
        "a": np.arange(6.0).reshape(2, 3),
        "f": np.asfortranarray(np.ones((2, 3), np.float32)),
        "o": np.array(["x", None], dtype=object),
        "s": np.float64(2.5),
        "rec": np.zeros(2, dtype=[("u", "<f4"), ("v", "<i2")]),
        "csc": scipy.sparse.csc_matrix(np.eye(3)),
        "csr": scipy.sparse.csr_matrix(np.eye(2)),
        "coo": scipy.sparse.coo_matrix(np.eye(2)),
        "set": {1, 2},
        "frozen": frozenset({3}),
        "slice": slice(1, 5, 2),
        "c": 1 + 2j,
        "od": collections.OrderedDict(b=1),
        "dd": collections.defaultdict(list, {"k": [1]}),
        "bytes": b"\x00\xff",
    }
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        got = loads(pickle.dumps(value, protocol=protocol), source="mem")
        assert got["bytes"] == b"\x00\xff" and got["set"] == {1, 2} and got["c"] == 1 + 2j
        np.testing.assert_array_equal(got["a"], value["a"])
        assert got["f"].flags.f_contiguous and got["rec"].dtype == value["rec"].dtype
        assert (got["csc"].toarray() == np.eye(3)).all() and got["dd"]["k"] == [1]


def test_python2_pickle_with_numpy_core_spelling_loads(tmp_path: Path) -> None:
    arrays = {"pose": np.linspace(0, 1, 72), "name": "courtyard", "ids": np.arange(3)}
    path = dump_py2(arrays, tmp_path / "py2.pkl")
    assert b"numpy.core.multiarray" in path.read_bytes()  # the Python 2 era module name
    got = load_pickle(path)
    np.testing.assert_array_equal(got["pose"], arrays["pose"])
    assert got["name"] == "courtyard"


def test_chumpy_only_when_the_caller_asks(tmp_path: Path) -> None:
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), module
    try:  # protocol 0/1 build the object through copyreg._reconstructor, protocol 2 through NEWOBJ
        blobs = [pickle.dumps({"v": Ch(np.ones(3))}, protocol=p) for p in (0, 1, 2)]
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    for data in blobs:
        with pytest.raises(UnsafePickleError, match=r"chumpy\.ch\.Ch"):
            loads(data, source="smpl.pkl")
        got = loads(data, source="smpl.pkl", chumpy=ChumpyStub)
        np.testing.assert_array_equal(got["v"].value(), np.ones(3))


def test_refused_global_names_the_file_and_the_global(tmp_path: Path, payload) -> None:
    obj, marker = payload
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": obj}, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        load_pickle(path)
    assert str(path) in str(info.value) and f"{info.value.module}.{info.value.name}" in str(info.value)
    assert info.value.name in ("system", "open") and not marker.exists()
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)  # crosses worker processes


def test_3dpw_payload_is_a_file_reject_and_other_sequences_are_ingested(tmp_path: Path, payload) -> None:
    obj, marker = payload
    raw = tmp_path / "raw"
    root = raw / "3dpw"
    write_sequence(root, "test", sequence_dict("good_seq", 2, valid=[[1, 1]], genders=["m"]))
    evil = sequence_dict("evil_seq", 2, valid=[[1, 1]], genders=["m"], seed=1)
    evil["genders"] = [obj]
    dump_py2(evil, root / "sequenceFiles" / "test" / "evil_seq.pkl")
    summary = ingest_dataset(load_source("3dpw"), raw, tmp_path / "m", check_images=False)
    assert not marker.exists()
    assert summary.rows == {"test": 2}
    assert [f for f, _ in summary.file_rejects] == ["3dpw/sequenceFiles/test/evil_seq.pkl"]
    assert "refused to unpickle" in summary.file_rejects[0][1]
    rejects = pq.read_table(tmp_path / "m" / "3dpw" / "rejects.parquet").to_pylist()
    assert [r["field"] for r in rejects] == ["<file>"] and "refused to unpickle" in rejects[0]["reason"]


def test_up3d_payload_rejects_that_row_only(tmp_path: Path, payload) -> None:
    obj, marker = payload
    raw = tmp_path / "raw"
    folder = raw / "up3d" / "up-3d"
    folder.mkdir(parents=True)
    up3d_fx.write_sample(folder, "00000", seed=0)
    up3d_fx.write_sample(folder, "00001", seed=1)
    body = {"pose": np.zeros(72), "betas": np.zeros(10), "rt": obj}
    dump_py2(body, folder / "00001_body.pkl")
    up3d_fx.write_split(folder, "trainval.txt", ["00000", "00001"])
    summary = ingest_dataset(load_source("up3d"), raw, tmp_path / "m")
    assert not marker.exists() and summary.rows == {"trainval": 1}
    rejects = pq.read_table(tmp_path / "m" / "up3d" / "rejects.parquet").to_pylist()
    assert [(r["sample_id"], r["field"]) for r in rejects] == [("up3d_00001", "body.pkl")]
    assert "refused to unpickle" in rejects[0]["reason"]


def test_smpl_pkl_payload_is_refused(tmp_path: Path, payload) -> None:
    obj, marker = payload
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "bs_style": obj}, protocol=2))
    with pytest.raises(BodyModelFileError, match="refused to unpickle") as info:
        read_smpl_file(path)
    assert str(path) in str(info.value) and not marker.exists()


def test_npz_object_member_payload_is_refused(tmp_path: Path, payload) -> None:
    obj, marker = payload
    raw = tmp_path / "raw"
    names = ["images/im0001.jpg", "images/im0002.jpg"]
    good = spin_arrays(names, lsp_style=True)
    write_npz(raw / "spin_extras/dataset_extras/lsp_dataset_test.npz", good)
    evil = dict(good, imgname=np.array([names[0], obj], dtype=object))
    write_npz(raw / "spin_extras/dataset_extras/lsp_dataset_original_train.npz", evil)
    write_images(raw / "lsp" / "small", names)
    with pytest.raises(UnsafePickleError, match=r"lsp_dataset_original_train\.npz\[imgname\]"):
        load_npz(raw / "spin_extras/dataset_extras/lsp_dataset_original_train.npz")
    summary = ingest_dataset(load_source("lsp"), raw, tmp_path / "m")
    assert not marker.exists()
    assert summary.rows == {"train": 0, "test": 2}
    assert "refused to unpickle" in summary.file_rejects[0][1]
    assert read_manifest(tmp_path / "m" / "lsp" / "test.parquet").num_rows == 2


def test_npz_object_member_of_plain_strings_still_loads(tmp_path: Path) -> None:
    names = ["images/im0001.jpg", "images/im0002.jpg"]
    arrays = dict(spin_arrays(names, lsp_style=True), imgname=np.array(names, dtype=object))
    path = write_npz(tmp_path / "x.npz", arrays)
    got = load_npz(path)
    assert got["imgname"].dtype == object and got["imgname"].tolist() == names
    np.testing.assert_array_equal(got["part"], arrays["part"])


def test_python2_era_module_paths_of_smpl_files_resolve() -> None:
    """Official SMPL files name ``scipy.sparse.csc.csc_matrix`` and (protocol 0/1) ``copy_reg`` /
    ``__builtin__``; today's scipy keeps the class in ``scipy.sparse._csc``."""
    matrix = scipy.sparse.csc_matrix(np.arange(6.0).reshape(2, 3))
    for protocol in (0, 1, 2):
        blob = pickle.dumps({"J_regressor": matrix}, protocol=protocol)
        assert b"scipy.sparse._csc\ncsc_matrix" in blob
        old = blob.replace(b"scipy.sparse._csc\ncsc_matrix", b"scipy.sparse.csc\ncsc_matrix")
        if protocol < 2:
            assert b"copy_reg\n_reconstructor" in old and b"__builtin__\nobject" in old
        got = loads(old, source="basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
        np.testing.assert_array_equal(got["J_regressor"].toarray(), matrix.toarray())


def test_sparse_matrix_with_out_of_range_indices_is_refused_before_use() -> None:
    """scipy does not check unpickled index arrays and its C code trusts them (a crafted SMPL regressor
    crashed the process in the fault suite); the unpickler checks them first."""
    csc = scipy.sparse.csc_matrix(np.eye(4))
    csc.indices[1] = 10**7
    coo = scipy.sparse.coo_matrix(np.eye(3))
    coo.col[0] = -5
    for bad in ({"J_regressor": csc}, [np.array([coo], dtype=object)]):
        with pytest.raises(FileReadError, match="damaged pickle"):
            loads(pickle.dumps(bad, protocol=2), source="SMPL_NEUTRAL.pkl")
