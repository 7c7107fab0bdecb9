"""WebDataset shard format: sample encoding, byte-reproducible tar writing, ``index.json`` and verification.

A shard sample (``__key__`` = the manifest's ``sample_id``) has these members:

- ``jpg``: the RGB person crop (JPEG, quality ``JPEG_QUALITY``), ``crop_size`` square.
- ``iuv.png``: (crop_size, crop_size, 3) uint8, channel 0 = DensePose part I in 0..24 (0 background),
  channels 1, 2 = U, V in 0..255. Absent when the sample has no SMPL fit (``json["has_iuv"]`` is false).
- ``smpl.npy``: float32 (82,) = SMPL pose (72, axis-angle, camera frame: x right, y down, z forward)
  followed by betas (10). Absent when ``has_smpl`` is false. No camera is stored: the crop transform in
  ``json["crop"]`` plus the keypoints define the projection.
- ``kp2d.npy``: float32 (24, 3) SPIN-24 keypoints in crop pixels (x, y, visibility).
- ``kp3d.npy``: float32 (24, 4) SPIN-24 3D joints (metres, camera-frame axes, confidence). Absent when
  ``has_kp3d`` is false.
- ``dp.npy`` / ``dpmask.png``: DensePose-COCO points (float32 (N, 5) x, y crop pixels, I, U, V) and coarse
  part labels (crop_size square, 0..14), only for rows annotated with them (:mod:`pipeline.dp_points`).
- ``json``: every other manifest field, the flags ``has_smpl``/``has_iuv``/``has_kp3d`` and ``crop``
  (``size``, ``margin``, ``matrix`` = the (2, 3) image->crop affine).
- ``sha256``: the sample's checksum, 64 hex digits (ASCII) of :func:`sample_checksum` over the other
  members; added by :func:`write_tar`. The loader skips (and counts) a sample whose members do not match
  it, so a flipped byte never becomes training data; ``verify_shards`` reports it by key. A JPEG member
  must also reach its end-of-image marker and a PNG its IEND chunk with intact CRCs
  (:func:`pipeline.datasets.images.image_problem`).

Tars are written with fixed mtime/uid/gid/owner names and members in a fixed order (samples in manifest
order, members sorted by extension), so the same content always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from pipeline import dp_points
from pipeline.datasets.images import PNG_SIGNATURE, image_problem, png_chunks
from pipeline.files import atomic_write_bytes, file_digest, stale_temp_files

JPEG_QUALITY = 95
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
INDEX_NAME = "index.json"
INDEX_FORMAT = 1
SMPL_DIM = 82  # pose 72 + betas 10
CHECKSUM_EXT = "sha256"
SAMPLE_CHECKSUM = "sha256-v1"  # how CHECKSUM_EXT is computed (recorded in index.json's params by render)
MEMBER_EXTS = ("iuv.png", "jpg", "json", "kp2d.npy", "kp3d.npy", CHECKSUM_EXT, "smpl.npy")


def shard_name(dataset: str, split: str, index: int) -> str:
    """File name of shard ``index`` of ``dataset``/``split``: ``NAME-SPLIT-000000.tar``."""
    return f"{dataset}-{split}-{index:06d}.tar"


def shard_dir(root: str | os.PathLike, dataset: str, split: str) -> Path:
    """Folder holding one split's shards and index: ``ROOT/NAME/SPLIT``."""
    return Path(root) / dataset / split


# ---------------------------------------------------------------------------------------------------------
# member encoding / decoding


def encode_jpg(rgb: np.ndarray) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB image."""
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpg(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB image from JPEG bytes; raises ValueError when they are not one whole JPEG or do
    not decode."""
    problem = image_problem(data)
    if problem is not None:
        raise ValueError(problem)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3:
        raise ValueError("not a decodable JPEG")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # contiguous (a [..., ::-1] view makes every warp copy)


def encode_png(iuv: np.ndarray) -> bytes:
    """Lossless PNG bytes of an (H, W, 3) uint8 array stored channel-for-channel (no colour reordering)."""
    if iuv.dtype != np.uint8 or iuv.ndim != 3 or iuv.shape[2] != 3:
        raise ValueError(f"IUV map must be (H, W, 3) uint8, got {iuv.shape} {iuv.dtype}")
    # zlib level 1 with no per-row PNG filter: lossless like any PNG, ~2.5x faster to encode and ~2x faster
    # to decode (the loader decodes every map every epoch) than libpng's adaptive filters, ~40% larger.
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(iuv[..., ::-1]), PNG_PARAMS)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _unfiltered_rgb_png(data: bytes) -> np.ndarray | None:
    """(H, W, 3) uint8 of a whole 8-bit RGB, non-interlaced PNG whose rows all carry filter 0 (what
    :func:`encode_png` writes), by inflating its IDAT chunks with zlib and dropping each row's filter
    byte; None for any other PNG. The same array as libpng's decode at ~0.6x its cost for a 256-px map
    (bench.loader), the largest part of the loader's decode after the JPEG."""
    idat, shape = [], None
    for kind, payload in png_chunks(data):
        if kind == b"IHDR":
            shape = (int.from_bytes(payload[4:8], "big"), int.from_bytes(payload[0:4], "big"))
            if (
                len(payload) != 13 or payload[8:10] != b"\x08\x02" or payload[12] != 0
            ):  # depth 8, RGB; no interlace
                return None
        elif kind == b"IDAT":
            idat.append(payload)
    if shape is None or not idat:
        return None
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error:
        return None
    if len(raw) != shape[0] * (1 + 3 * shape[1]):
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(shape[0], 1 + 3 * shape[1])
    if rows[:, 0].any():  # a row with another filter: left to libpng
        return None
    return rows[:, 1:].copy().reshape(shape[0], shape[1], 3)  # a copy: writeable, not the bytes


def decode_png(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 array from PNG bytes written by :func:`encode_png` (whole, CRCs intact; a damaged
    or truncated file is a ValueError saying where); other RGB PNGs (other filters, interlaced) go through
    OpenCV."""
    if data[:8] == PNG_SIGNATURE:
        fast = _unfiltered_rgb_png(data)  # walks every chunk to IEND when it returns: PNGDamaged otherwise
        if fast is not None:
            return fast
    problem = image_problem(data)
    if problem is not None:
        raise ValueError(problem)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("not a decodable 3-channel PNG")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # channel order back to I, U, V, contiguous


def encode_npy(array: np.ndarray) -> bytes:
    """``.npy`` bytes of ``array`` as float32."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


_NPY_F32_HEADER = re.compile(rb"\{'descr': '<f4', 'fortran_order': False, 'shape': \(([0-9, ]*)\), \}")


def decode_npy(data: bytes) -> np.ndarray:
    """Array from ``.npy`` bytes (pickles refused).

    The little-endian float32 C-order arrays this pipeline writes take a fast path (numpy's own reader
    parses the header with ``ast.literal_eval``, a visible cost per sample in the loader); anything else
    goes through ``np.load``.
    """
    if data[:8] == b"\x93NUMPY\x01\x00":
        header_len = int.from_bytes(data[8:10], "little")
        match = _NPY_F32_HEADER.match(data, 10, 10 + header_len)
        if match:
            shape = tuple(int(v) for v in match.group(1).split(b",") if v.strip())
            array = np.frombuffer(data, dtype="<f4", offset=10 + header_len)
            if array.size == math.prod(shape):
                return array.reshape(shape)
            raise ValueError(f"npy data holds {array.size} values, header says {shape}")
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_json(obj: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace variance)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def sample_checksum(members: Mapping[str, bytes]) -> bytes:
    """The ``sha256`` member of a sample: hex sha256 over its other members in sorted order, each as
    extension, a NUL, its length (8 bytes big-endian) and its bytes."""
    digest = hashlib.sha256()
    for ext in sorted(members):
        if ext in (CHECKSUM_EXT, "__key__", "__url__"):
            continue
        data = members[ext]
        digest.update(ext.encode() + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest().encode("ascii")


def checksum_problem(sample: Mapping[str, Any]) -> str | None:
    """Why a raw sample ({ext: bytes}, WebDataset style) fails its checksum, or None when it matches.
    A sample without the member (a shard written before checksums) is accepted: None."""
    stored = sample.get(CHECKSUM_EXT)
    if stored is None:
        return None
    if sample_checksum(sample) != bytes(stored).strip():
        return "checksum mismatch: a member is damaged"
    return None


DECODERS = {
    dp_points.POINTS_MEMBER: dp_points.decode_points,  # DensePose points and coarse masks (dp_points.py)
    dp_points.MASK_MEMBER: dp_points.decode_mask,
    "jpg": decode_jpg,
    "iuv.png": decode_png,
    "smpl.npy": decode_npy,
    "kp2d.npy": decode_npy,
    "kp3d.npy": decode_npy,
    "json": lambda b: json.loads(b.decode("utf-8")),
    CHECKSUM_EXT: lambda b: b,  # checked per sample (checksum_problem), not per member
}


# ---------------------------------------------------------------------------------------------------------
# tar writing


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_tar(path: str | os.PathLike, samples: Iterable[tuple[str, Mapping[str, bytes]]]) -> None:
    """Write ``samples`` ((key, {ext: bytes}), in the given order) to a tar at ``path``, reproducibly.

    Members are ``KEY.EXT`` with extensions sorted; metadata is fixed, so equal input gives equal bytes.
    Every sample gets its ``sha256`` member (:func:`sample_checksum`; one given is recomputed). Keys must
    not contain dots (WebDataset splits the key at the first dot).
    """
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for key, members in samples:
            if "." in key or "/" in key:
                raise ValueError(f"sample key {key!r} must contain no '.' or '/'")
            members = {**members, CHECKSUM_EXT: sample_checksum(members)}
            for ext in sorted(members):
                data = members[ext]
                tar.addfile(_tarinfo(f"{key}.{ext}", len(data)), io.BytesIO(data))


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files of :func:`atomic_write_bytes` (``.NAME.*.tmp``) that a killed writer
    left in ``folder``; call it where only one writer runs (a render of that split). Returns them."""
    stale = stale_temp_files(folder)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


_BLOCK = 512


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for large values
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def iter_tar_members(stream: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each regular file in a tar ``stream``, in order; raises tarfile.ReadError when broken.

    A minimal sequential reader (ustar/GNU headers, GNU long names; pax headers skipped): the standard
    ``tarfile`` parses every header field in Python, about a tenth of a millisecond per member, which is a
    large share of the loader's per-sample budget. Header checksums are verified.
    """
    long_name: str | None = None
    while True:
        header = stream.read(_BLOCK)
        if header == bytes(_BLOCK):
            return
        if len(header) < _BLOCK:
            raise tarfile.ReadError("tar ends without its end-of-archive block (truncated?)")
        if _octal(header[148:156]) != sum(header[:148]) + 256 + sum(header[156:]):
            raise tarfile.ReadError("tar header checksum mismatch")
        size, kind = _octal(header[124:136]), header[156:157]
        data = stream.read(size)
        if len(data) < size:
            raise tarfile.ReadError("unexpected end of tar data")
        stream.read(-size % _BLOCK)
        if kind == b"L":
            long_name = data.split(b"\0", 1)[0].decode("utf-8")
            continue
        if kind in (b"0", b"\0"):
            name = long_name or header[:100].split(b"\0", 1)[0].decode("utf-8")
            if long_name is None and header[257:263] == b"ustar\0" and header[345]:  # POSIX name prefix
                name = header[345:500].split(b"\0", 1)[0].decode("utf-8") + "/" + name
            yield name, data
        long_name = None


def tar_samples(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """WebDataset-style samples ``{"__key__", "__url__", EXT: bytes}`` of a shard (members grouped by key)."""
    sample: dict[str, Any] | None = None
    with open(path, "rb") as f:
        for name, data in iter_tar_members(f):
            key, _, ext = name.partition(".")
            if sample is None or sample["__key__"] != key:
                if sample is not None:
                    yield sample
                sample = {"__key__": key, "__url__": os.fspath(path)}
            sample[ext] = data
    if sample is not None:
        yield sample


# ---------------------------------------------------------------------------------------------------------
# index.json


@dataclass
class ShardEntry:
    """One shard's line in ``index.json``; ``rejects`` are the manifest rows of this shard left out."""

    name: str
    samples: int
    bytes: int
    md5: str
    keys: tuple[str, str] | None = None  # first and last sample key
    rejects: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "samples": self.samples,
            "bytes": self.bytes,
            "md5": self.md5,
            "keys": list(self.keys) if self.keys else None,
            "rejects": self.rejects,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ShardEntry:
        keys = d.get("keys")
        return cls(d["name"], int(d["samples"]), int(d["bytes"]), d["md5"], tuple(keys) if keys else None,
                   list(d.get("rejects", [])))  # fmt: skip


def write_index(folder: str | os.PathLike, params: Mapping[str, Any], entries: Iterable[ShardEntry]) -> None:
    """Atomically write ``folder/index.json``: the build ``params``, shards sorted by name, all rejects."""
    entries = sorted(entries, key=lambda e: e.name)
    rejects = [dict(r, shard=e.name) for e in entries for r in e.rejects]
    doc = {
        "format": INDEX_FORMAT,
        "params": dict(params),
        "samples": sum(e.samples for e in entries),
        "shards": [e.to_json() for e in entries],
        "rejects": rejects,
    }
    atomic_write_bytes(Path(folder) / INDEX_NAME, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")


def read_index(folder: str | os.PathLike) -> dict[str, Any]:
    """Parse ``folder/index.json``; raises FileNotFoundError / ValueError naming the file."""
    path = Path(folder) / INDEX_NAME
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if doc.get("format") != INDEX_FORMAT or not isinstance(doc.get("shards"), list):
        raise ValueError(f"{path}: not a shard index of format {INDEX_FORMAT}")
    return doc


def shard_url(folder: str | os.PathLike, name: str) -> str:
    """The path WebDataset reads shard ``name`` of ``folder`` by (the ``__url__`` of its samples)."""
    return str(Path(folder) / name)


def shard_urls(folder: str | os.PathLike) -> list[str]:
    """Paths of the shards listed in ``folder/index.json`` (sorted), for WebDataset."""
    return [shard_url(folder, s["name"]) for s in read_index(folder)["shards"]]


# ---------------------------------------------------------------------------------------------------------
# verification


def check_tar_members(path: str | os.PathLike) -> tuple[int, list[tuple[str, str]]]:
    """Decode every member of the shard at ``path`` and check each sample's checksum; returns (sample
    count, [(key, problem), ...])."""
    problems: list[tuple[str, str]] = []
    keys: list[str] = []
    members: dict[str, bytes] = {}

    def check_sample() -> None:
        if not keys:
            return
        if CHECKSUM_EXT not in members:
            problems.append((keys[-1], "no per-sample checksum (a shard from before checksums: re-render)"))
        elif problem := checksum_problem(members):
            problems.append((keys[-1], problem))

    try:
        with tarfile.open(path, "r") as tar:
            for info in tar:
                if not info.isfile():
                    problems.append((info.name, "not a regular file"))
                    continue
                key, _, ext = info.name.partition(".")
                if not keys or keys[-1] != key:
                    check_sample()
                    keys.append(key)
                    members = {}
                decoder = DECODERS.get(ext)
                if decoder is None:
                    problems.append((key, f"unknown member {info.name}"))
                    continue
                try:
                    data = tar.extractfile(info).read()
                    members[ext] = data
                    decoder(data)
                except Exception as e:  # noqa: BLE001 - any decode failure is a finding, reported by key
                    problems.append((key, f"{ext} does not decode: {e}"))
            check_sample()
    except (tarfile.TarError, OSError, EOFError) as e:
        problems.append(("<tar>", f"unreadable tar: {e}"))
    if len(set(keys)) != len(keys):
        problems.append(("<tar>", "a key's members are not contiguous or a key repeats"))
    return len(set(keys)), problems


def verify_entry(
    folder: str | os.PathLike, entry: ShardEntry, *, decode: bool = True
) -> list[tuple[str, str]]:
    """Problems [(key or '<shard>', message)] of one shard against its index entry; [] when it is sound."""
    path = Path(folder) / entry.name
    if not path.is_file():
        return [("<shard>", "missing")]
    problems: list[tuple[str, str]] = []
    size = path.stat().st_size
    if size != entry.bytes:
        problems.append(("<shard>", f"size {size} != index {entry.bytes}"))
    md5 = file_digest(path, "md5")
    if md5 != entry.md5:
        problems.append(("<shard>", f"md5 {md5} != index {entry.md5}"))
    if decode:
        count, member_problems = check_tar_members(path)
        problems.extend(member_problems)
        if count != entry.samples:
            problems.append(("<shard>", f"{count} samples != index {entry.samples}"))
    return problems
