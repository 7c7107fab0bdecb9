"""Fetch the files of a source manifest: resumable HTTP download, checksum verification, archive extraction,
and verification of login-gated files the user placed by hand.

Rules the code keeps: a file reaches its final name only after a complete transfer (it grows as
``<name>.part`` first, resumed with an HTTP ``Range`` request); a file that fails its checksum is moved aside
to ``<name>.bad-<UTC timestamp>``, never deleted; a verified file is never downloaded again. A download that
fails its checksum is not repeated by the next run while its moved-aside copy is kept (the server sends
other bytes than the manifest names: the manifest or the URL needs a look), so reruns neither download it
again and again nor pile up copies; deleting the copy allows one more try. A file that must be extracted
but is no zip or tar (e.g. an HTML login or error page saved under the archive's name) is moved aside the
same way. Verification
results are cached in ``RAW_DIR/<dataset>/.fetch_state.json`` keyed by size and mtime, so reruns don't re-hash
gigabytes. urllib is used directly (no extra dependency); it is all we need for GET + Range.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from pipeline.files import atomic_write_text, file_digest

from .sources import Source, SourceFile

STATE_FILE = ".fetch_state.json"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A transfer failed or was cut off; the ``.part`` file is kept so the next run resumes."""


class NotAnArchive(ValueError):
    """A file marked for extraction is no zip or tar archive."""


@dataclass
class FileResult:
    path: str
    status: str  # ok | downloaded | placed | missing | bad | failed
    message: str = ""


@dataclass
class FetchReport:
    dataset: str
    results: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("ok", "downloaded", "placed") for r in self.results)


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.bad-<UTC timestamp>`` (unique) and return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    return target


# ---------------------------------------------------------------------------------------------------- state


def _load_state(dataset_dir: Path) -> dict:
    try:
        return json.loads((dataset_dir / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_state(dataset_dir: Path, state: dict) -> None:
    atomic_write_text(dataset_dir / STATE_FILE, json.dumps(state, indent=1, sort_keys=True))


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def verify_file(path: Path, spec: SourceFile, state: dict) -> str | None:
    """Check a present file against its manifest entry; return None when good, else the reason.

    Size is checked first (cheap), then every published checksum. Results are cached in ``state`` under the
    entry's path with the file's (size, mtime) so an unchanged verified file is not hashed again.
    """
    entry = state.get(spec.path, {})
    key = _stat_key(path)
    if entry.get("verified") == key:
        return None
    if spec.size is not None and key[0] != spec.size:
        return f"size is {key[0]} bytes, the manifest says {spec.size}"
    digests = {}
    for algo in ("sha256", "md5"):
        want = getattr(spec, algo)
        if want is not None or algo == "sha256":  # always record sha256 so users can pin it later
            digests[algo] = file_digest(path, algo)
            if want is not None and digests[algo] != want:
                return f"{algo} is {digests[algo]}, the manifest says {want}"
    state[spec.path] = {**entry, "verified": key, "sha256": digests["sha256"]}
    return None


# ------------------------------------------------------------------------------------------------- download


def _total_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes (?:\d+-\d+|\*)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def download(url: str, dest: Path, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` with an HTTP Range request.

    The body is appended to ``<dest>.part``; only when the byte count matches the announced length is it
    renamed to ``dest``. A server that ignores Range (200 instead of 206) restarts the transfer from zero.
    Raises :class:`DownloadError` (``.part`` kept) when the connection fails or ends early.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "danet-pipeline-fetch/1", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            total = _total_from_content_range(e.headers.get("Content-Range"))
            if total == offset:  # the previous run got every byte but stopped before the rename
                os.replace(part, dest)
                return dest
            aside = move_aside(part)
            msg = f"{url}: server refused resume at byte {offset}; moved {aside.name} aside"
            raise DownloadError(msg) from e
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
        raise DownloadError(f"{url}: {e}") from e
    with response:
        if offset and response.status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        else:
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        got = offset
        bar = tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name, disable=not progress
        )
        try:
            with open(part, mode) as f, bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:  # IncompleteRead is an HTTPException
            raise DownloadError(f"{url}: transfer broke at byte {got} ({e}); rerun to resume") from e
    if total is not None and got != total:
        raise DownloadError(f"{url}: transfer ended at byte {got} of {total}; rerun to resume")
    os.replace(part, dest)
    return dest


# -------------------------------------------------------------------------------------------------- extract


def _safe_target(root: Path, member: str, archive: Path) -> Path:
    target = (root / member).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise ValueError(f"{archive}: member {member!r} would land outside {root}; refusing to extract")
    return target


def _merge_tree(src: Path, dst: Path) -> None:
    """Move everything under ``src`` into ``dst``, merging folders; files from the archive replace older
    copies of themselves (they are the same verified bytes)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        target = dst / item.name
        if item.is_dir() and not item.is_symlink() and target.is_dir():
            _merge_tree(item, target)
        else:
            os.replace(item, target)


def extract_archive(archive: Path, dest_dir: Path) -> None:
    """Unpack a zip or tar(.gz/.bz2/.xz) ``archive`` into ``dest_dir``.

    Unpacks into a temporary folder inside ``dest_dir`` first and then moves the contents in, so an
    interrupted extraction never leaves half-written files under their final names. Members that would
    escape ``dest_dir`` (absolute paths, ``..``, links) are refused.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}-", dir=dest_dir))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    _safe_target(tmp, name, archive)
                z.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        else:
            raise ValueError(f"{archive}: not a zip or tar archive")
        macosx = tmp / "__MACOSX"  # resource forks some zips carry; not data
        if macosx.is_dir():
            shutil.rmtree(macosx)
        _merge_tree(tmp, dest_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- fetch


def placement_instructions(source: Source, spec: SourceFile, dataset_dir: Path) -> str:
    """Text telling the user exactly which file/folder to put where for a login-gated entry."""
    what = "a folder" if spec.kind == "directory" else "the file"
    lines = [f"  place {what} {dataset_dir / spec.path}"]
    if spec.kind == "directory":
        lines.append(f"    (at least {spec.min_files} file(s) matching {spec.glob!r})")
    if spec.place:
        lines.append(f"    {spec.place.strip()}")
    if source.registration_url:
        lines.append(f"    register / accept the licence at {source.registration_url}")
    return "\n".join(lines)


def _check_directory(path: Path, spec: SourceFile) -> str | None:
    if not path.is_dir():
        return "missing"
    n = sum(1 for p in path.rglob(spec.glob) if p.is_file())
    return None if n >= spec.min_files else f"holds {n} file(s) matching {spec.glob!r}, need {spec.min_files}"


def looks_like_html(path: Path) -> bool:
    """Whether the file starts like an HTML page (what a login wall or an error page sends instead)."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in head[:200]


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def _extract_if_needed(spec: SourceFile, path: Path, dataset_dir: Path, state: dict) -> str:
    entry = state.get(spec.path, {})
    if not spec.extract or entry.get("extracted") == entry.get("sha256"):
        return ""
    if not is_archive(path):
        kind = (
            "an HTML page (a login or error page?)" if looks_like_html(path) else "not a zip or tar archive"
        )
        raise NotAnArchive(f"{path} should be an archive to extract but is {kind}")
    extract_archive(path, dataset_dir / spec.extract_dir)
    state[spec.path] = {**entry, "extracted": entry.get("sha256")}
    return f"; extracted into {dataset_dir / spec.extract_dir}"


def fetch_file(
    source: Source,
    spec: SourceFile,
    dataset_dir: Path,
    state: dict,
    *,
    retries: int = 2,
    progress: bool = True,
    extract: bool = True,
) -> FileResult:
    """Bring one manifest entry to a verified state (download / verify / move aside / extract)."""
    path = dataset_dir / spec.path
    if spec.kind == "directory":
        problem = _check_directory(path, spec)
        if problem is None:
            return FileResult(spec.path, "placed", f"{path} is in place")
        how = placement_instructions(source, spec, dataset_dir)
        return FileResult(spec.path, "missing", f"{path}: {problem}\n{how}")

    status = "ok"
    bad = state.get(spec.path, {}).get("bad_download")
    if not path.exists() and bad and (path.parent / bad["aside"]).exists():
        return FileResult(
            spec.path,
            "bad",
            f"{path}: the last download {bad['reason']} and is kept as {bad['aside']}; not downloading it "
            f"again: the server sends other bytes than the manifest names (check its url and checksum), "
            f"or delete {bad['aside']} to try once more",
        )
    if not path.exists() and not spec.login_required:
        for attempt in range(retries + 1):
            try:
                download(spec.url, path, progress=progress)
                status = "downloaded"
                break
            except DownloadError as e:
                if attempt == retries:
                    return FileResult(spec.path, "failed", str(e))
    if not path.exists():
        return FileResult(
            spec.path, "missing", f"{path} is missing\n" + placement_instructions(source, spec, dataset_dir)
        )
    problem, note = verify_file(path, spec, state), ""
    if problem is None and extract:
        try:
            note = _extract_if_needed(spec, path, dataset_dir, state)
        except NotAnArchive as err:
            problem = str(err).removeprefix(f"{path} ")
    if problem is not None:
        return _set_aside(spec, path, problem, state, downloaded=status == "downloaded")
    state.get(spec.path, {}).pop("bad_download", None)
    if spec.login_required and status == "ok":
        status = "placed"
    return FileResult(spec.path, status, f"{path} verified{note}")


def _set_aside(spec: SourceFile, path: Path, problem: str, state: dict, downloaded: bool) -> FileResult:
    """Moves a bad file aside and records it; a bad download is not repeated while its copy is kept."""
    aside = move_aside(path)
    state.pop(spec.path, None)
    if spec.login_required:
        hint = "place a good copy"
    elif downloaded:
        state[spec.path] = {"bad_download": {"aside": aside.name, "reason": f"failed its check ({problem})"}}
        hint = "a rerun will not download it again while that copy is kept (see the manifest's url)"
    else:
        hint = "rerun to download it again"
    return FileResult(spec.path, "bad", f"{path}: {problem}; moved it aside to {aside.name}; {hint}")


def fetch_source(
    source: Source, root: str | os.PathLike, *, retries: int = 2, progress: bool = True, extract: bool = True
) -> FetchReport:
    """Fetch/verify every file of ``source`` under ``root/<name>``; one bad file doesn't stop the others."""
    dataset_dir = Path(root) / source.name
    dataset_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(dataset_dir)
    report = FetchReport(source.name)
    for spec in source.files:
        try:
            result = fetch_file(
                source, spec, dataset_dir, state, retries=retries, progress=progress, extract=extract
            )
        except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as e:
            result = FileResult(spec.path, "failed", f"{dataset_dir / spec.path}: {e}")
        report.results.append(result)
        _save_state(dataset_dir, state)  # after each file: a crash later keeps earlier verifications
    return report
