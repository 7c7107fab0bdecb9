"""Source manifests (``manifests/sources/NAME.yaml``): what a dataset is, where its files come from, how to
check them, and how ``stages.ingest`` reads them. Loaded with strict schema validation: every error names the
YAML file and the offending field.

Layout of one manifest::

    name: lsp                       # must equal the file stem
    title: Leeds Sports Pose
    homepage: http://...
    licence: free text (as published)
    licence_url: http://...
    login_required: false           # true: files can't be fetched; the user places them (``place`` text)
    registration_url: null          # page where a licence is accepted / an account made, if any
    notes: free text
    files:                          # paths are relative to RAW_DIR/<name>; [] for locally generated data
      - path: lsp_dataset_original.zip
        url: http://...             # null for login-gated files
        size: 12345                 # bytes, null when not published
        sha256: null                # hex, null when not published (never invented)
        md5: null
        extract: true               # zip/tar: unpack into extract_to (default: the file's folder)
        extract_to: .
        login_required: false       # default: the dataset's value
        kind: file                  # or "directory": a folder the user fills (checked by glob/min_files)
        glob: "*.jpg"               # directory only: which files count
        min_files: 1                # directory only
        place: text telling the user where the file comes from (login-gated)
    ingest:
      splits:
        - split: train
          format: spin_npz          # spin_npz | pw3d_pkl | up3d | coco_json | humandata
          annotations: spin_extras/dataset_extras/lsp_dataset_original_train.npz   # relative to RAW_DIR
          image_root: .             # relative to RAW_DIR/<name>; image_path = image_root/<annotation path>
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

DEFAULT_SOURCES_DIR = Path(__file__).resolve().parents[2] / "manifests" / "sources"
INGEST_FORMATS = ("spin_npz", "pw3d_pkl", "up3d", "coco_json", "humandata")
_HEX = {"sha256": 64, "md5": 32}


class SourceError(ValueError):
    """A source manifest is missing, malformed or inconsistent; the message names file and field."""


@dataclass(frozen=True)
class SourceFile:
    """One file (or user-filled folder) of a dataset; ``path`` is relative to ``RAW_DIR/<dataset>``."""

    path: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    extract: bool = False
    extract_to: str | None = None
    login_required: bool = False
    kind: str = "file"
    glob: str = "*"
    min_files: int = 1
    place: str | None = None
    description: str | None = None

    @property
    def extract_dir(self) -> str:
        """Folder (relative to the dataset root) the archive unpacks into."""
        return self.extract_to if self.extract_to is not None else str(PurePosixPath(self.path).parent)


@dataclass(frozen=True)
class IngestSplit:
    split: str
    format: str
    annotations: str
    image_root: str = "."


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    homepage: str | None
    licence: str
    licence_url: str | None
    login_required: bool
    files: tuple[SourceFile, ...]
    splits: tuple[IngestSplit, ...] = ()
    registration_url: str | None = None
    notes: str | None = None
    path: Path = field(default=Path("."), compare=False)


_TOP_KEYS = {
    "name": (str, True),
    "title": (str, True),
    "homepage": ((str, type(None)), False),
    "licence": (str, True),
    "licence_url": ((str, type(None)), True),
    "login_required": (bool, True),
    "registration_url": ((str, type(None)), False),
    "notes": ((str, type(None)), False),
    "files": (list, True),
    "ingest": ((dict, type(None)), False),
}
_FILE_KEYS = {
    "path": (str, True),
    "url": ((str, type(None)), False),
    "size": ((int, type(None)), False),
    "sha256": ((str, type(None)), False),
    "md5": ((str, type(None)), False),
    "extract": (bool, False),
    "extract_to": ((str, type(None)), False),
    "login_required": (bool, False),
    "kind": (str, False),
    "glob": (str, False),
    "min_files": (int, False),
    "place": ((str, type(None)), False),
    "description": ((str, type(None)), False),
}
_SPLIT_KEYS = {
    "split": (str, True),
    "format": (str, True),
    "annotations": (str, True),
    "image_root": (str, False),
}


def _check_keys(data: Any, spec: dict, where: str) -> dict:
    if not isinstance(data, dict):
        raise SourceError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise SourceError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(spec)}")
    for key, (types, required) in spec.items():
        if key not in data:
            if required:
                raise SourceError(f"{where}: missing required field {key!r}")
            continue
        value = data[key]
        # bool is an int subclass: don't let `size: true` pass as an int
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise SourceError(f"{where}.{key}: expected {_type_names(types)}, got {value!r}")
    return data


def _as_tuple(types: Any) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: Any) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in _as_tuple(types))


def _check_relpath(value: str, where: str, allow_parent: bool = False) -> None:
    p = PurePosixPath(value)
    if p.is_absolute() or "\\" in value or (not allow_parent and ".." in p.parts):
        raise SourceError(f"{where}: {value!r} must be a relative POSIX path inside the dataset folder")


def _parse_file(data: Any, where: str, dataset_login: bool) -> SourceFile:
    _check_keys(data, _FILE_KEYS, where)
    f = SourceFile(**{"login_required": dataset_login, **data})
    _check_relpath(f.path, f"{where}.path")
    if f.extract_to is not None:
        _check_relpath(f.extract_to, f"{where}.extract_to")
    if f.kind not in ("file", "directory"):
        raise SourceError(f"{where}.kind: {f.kind!r} is not 'file' or 'directory'")
    for algo, length in _HEX.items():
        value = getattr(f, algo)
        if value is not None and not re.fullmatch(rf"[0-9a-f]{{{length}}}", value):
            raise SourceError(f"{where}.{algo}: {value!r} is not {length} lower-case hex digits")
    if f.size is not None and f.size < 0:
        raise SourceError(f"{where}.size: must be >= 0 bytes, got {f.size}")
    if f.url is not None and not re.match(r"https?://", f.url):
        raise SourceError(f"{where}.url: {f.url!r} is not an http(s) URL")
    if f.login_required:
        if not f.place:
            raise SourceError(f"{where}.place: a login-gated file needs instructions for the user")
    elif f.kind == "file" and f.url is None:
        raise SourceError(f"{where}.url: required unless login_required is true")
    if f.kind == "directory" and (f.extract or f.url):
        raise SourceError(f"{where}: a 'directory' entry is user-filled: no url, no extract")
    if f.extract and not re.search(r"\.(zip|tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$", f.path):
        raise SourceError(f"{where}.extract: {f.path!r} is not a .zip or .tar(.gz/.bz2/.xz) archive")
    return f


def load_source_file(path: str | os.PathLike) -> Source:
    """Parse and validate one manifest file; raise :class:`SourceError` naming file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SourceError(f"{path}: no such source manifest") from None
    except yaml.YAMLError as e:
        raise SourceError(f"{path}: not valid YAML: {e}") from None
    where = str(path)
    _check_keys(data, _TOP_KEYS, where)
    if data["name"] != path.stem:
        raise SourceError(f"{where}.name: {data['name']!r} must equal the file name stem {path.stem!r}")
    files = tuple(
        _parse_file(f, f"{where}.files[{i}]", data["login_required"]) for i, f in enumerate(data["files"])
    )
    paths = [f.path for f in files]
    dup = {p for p in paths if paths.count(p) > 1}
    if dup:
        raise SourceError(f"{where}.files: path(s) {sorted(dup)} listed twice")
    splits: list[IngestSplit] = []
    ingest = data.get("ingest") or {}
    _check_keys(ingest, {"splits": (list, False)}, f"{where}.ingest")
    for i, s in enumerate(ingest.get("splits", [])):
        w = f"{where}.ingest.splits[{i}]"
        _check_keys(s, _SPLIT_KEYS, w)
        split = IngestSplit(**s)
        if split.format not in INGEST_FORMATS:
            raise SourceError(f"{w}.format: {split.format!r} not one of {INGEST_FORMATS}")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", split.split):
            raise SourceError(f"{w}.split: {split.split!r} may only hold letters, digits, '_' and '-'")
        _check_relpath(split.annotations, f"{w}.annotations")
        _check_relpath(split.image_root, f"{w}.image_root", allow_parent=True)
        splits.append(split)
    names = [s.split for s in splits]
    if len(set(names)) != len(names):
        raise SourceError(f"{where}.ingest.splits: a split name is listed twice: {names}")
    top = {k: data.get(k) for k in ("homepage", "registration_url", "notes")}
    return Source(
        name=data["name"],
        title=data["title"],
        licence=data["licence"],
        licence_url=data["licence_url"],
        login_required=data["login_required"],
        files=files,
        splits=tuple(splits),
        path=path,
        **top,
    )


def load_source(name: str, sources_dir: str | os.PathLike | None = None) -> Source:
    """Load ``<sources_dir>/<name>.yaml`` (default: the repository's manifests/sources)."""
    sources_dir = Path(sources_dir) if sources_dir is not None else DEFAULT_SOURCES_DIR
    path = sources_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_sources(sources_dir)) or "none"
        raise SourceError(f"{path}: no source manifest for dataset {name!r} (known: {known})")
    return load_source_file(path)


def list_sources(sources_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the datasets that have a manifest in ``sources_dir``."""
    sources_dir = Path(sources_dir) if sources_dir is not None else DEFAULT_SOURCES_DIR
    return sorted(p.stem for p in sources_dir.glob("*.yaml"))
