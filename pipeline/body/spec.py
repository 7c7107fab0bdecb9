"""Which body a render uses: the body-model file, its dense parts and its keypoint regressor, as data.

A :class:`BodySpec` travels with the render parameters (into Dask workers and into ``index.json``), so the
shards say which files made them, and a change of any file's content (its sha256) re-renders. Values come
from the command line (``--body-model``, ``--dense-parts``, ``--extra-regressor``; DVC passes
``params.yaml``'s ``body:`` section) or, for flags not given, from the environment:

    DANET_BODY_MODEL       built-in name, SMPL file or SMPL folder (default: anny-smpl24)
    DANET_DENSE_PARTS      DensePose's UV_Processed.mat (default: the body model's own; real SMPL has none)
    DANET_EXTRA_REGRESSOR  SPIN's J_regressor_extra.npy (builds SPIN's 24 keypoints for real SMPL)

An empty value means "the default" (never "read the environment"), so a DVC run is the same in any shell.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.body.smpl_io import BUILTIN_MODELS, BodyModelFileError
from pipeline.files import file_digest

DEFAULT_BODY = "anny-smpl24"
ENVIRONMENT = {
    "model": "DANET_BODY_MODEL",
    "dense_parts": "DANET_DENSE_PARTS",
    "extra_regressor": "DANET_EXTRA_REGRESSOR",
}
_GENDER_FILES = ("neutral", "male", "female")


def _clean(value: str | os.PathLike | None) -> str:
    text = "" if value is None else os.fspath(value).strip()
    return "" if text.lower() in ("none", "null") else text


@dataclass(frozen=True)
class BodySpec:
    """model: built-in name, SMPL .pkl/.npz file or SMPL folder ("" = anny-smpl24);
    dense_parts: UV_Processed.mat or a body asset ("" = the model's own parts);
    extra_regressor: J_regressor_extra.npy (SPIN's 9 rows or GraphCMR's 14; "" = the model's own 'spin24')."""

    model: str = ""
    dense_parts: str = ""
    extra_regressor: str = ""

    def __post_init__(self) -> None:
        for name in ("model", "dense_parts", "extra_regressor"):
            object.__setattr__(self, name, _clean(getattr(self, name)))
        if not self.model:
            object.__setattr__(self, "model", DEFAULT_BODY)

    @classmethod
    def from_env(cls, **given: str | os.PathLike | None) -> BodySpec:
        """Spec from the given values; a value not given (None) is read from its environment variable."""
        unknown = set(given) - set(ENVIRONMENT)
        if unknown:
            raise TypeError(f"unknown body fields {sorted(unknown)}")
        values = {
            name: given[name] if given.get(name) is not None else os.environ.get(variable, "")
            for name, variable in ENVIRONMENT.items()
        }
        return cls(**values)

    @property
    def builtin(self) -> bool:
        return self.model in BUILTIN_MODELS

    @property
    def parts_source(self) -> str:
        return self.dense_parts or self.model

    def files(self) -> dict[str, list[Path]]:
        """The files each field stands for (an SMPL folder: its gendered model files)."""
        from pipeline.body.smpl_io import resolve_model_path

        out: dict[str, list[Path]] = {}
        if self.builtin:
            out["model"] = [BUILTIN_MODELS[self.model]]
        elif Path(self.model).is_dir():
            found = []
            for gender in _GENDER_FILES:
                try:
                    found.append(resolve_model_path(self.model, gender))
                except BodyModelFileError:
                    continue
            out["model"] = sorted(set(found))
        else:
            out["model"] = [Path(self.model)]
        for name in ("dense_parts", "extra_regressor"):
            value = getattr(self, name)
            if value:
                out[name] = [BUILTIN_MODELS[value] if value in BUILTIN_MODELS else Path(value)]
        return out

    def identity(self) -> dict[str, Any]:
        """The spec plus the sha256 of every file behind it: what index.json records."""
        hashes = {}
        for name, paths in self.files().items():
            for path in paths:
                if not path.is_file():
                    raise BodyModelFileError(f"{path}: {name.replace('_', ' ')} file not found")
                hashes[f"{name}:{path.name}"] = file_digest(path, "sha256")
        return {**asdict(self), "sha256": dict(sorted(hashes.items()))}

    def fingerprint(self) -> tuple:
        """(path, size, mtime) of every file: cheap, and changes whenever a file is rewritten. Caches of
        loaded bodies are keyed by it, so a file changed on disk is read again even in the same process."""
        stats = []
        for paths in self.files().values():
            for path in paths:
                info = path.stat() if path.exists() else None
                stats.append((str(path), info.st_size if info else -1, info.st_mtime_ns if info else -1))
        return tuple(stats)

    def load_body(self, gender: str = "neutral", device: str | None = None):
        """The body model for `gender` with the spec's regressors (built-in bodies have one gender)."""
        return _load_body(self, self.fingerprint(), "neutral" if self.builtin else gender, device)

    def load_parts(self):
        """Dense parts, checked to fit the neutral body (vertex count, index range)."""
        return _load_parts(self, self.fingerprint())

    def check_renderable(self) -> None:
        """Loads body and parts once and checks what rendering needs (parts that fit, 'spin24' keypoints);
        raises BodyModelFileError naming the files."""
        self.load_parts()
        body = self.load_body()
        if "spin24" not in body.regressor_names:
            raise BodyModelFileError(
                f"{self.model}: rendering fits the camera to SPIN's 24 keypoints, which real SMPL builds "
                "from SPIN's J_regressor_extra.npy: pass --extra-regressor (params.yaml body.extra_regressor "
                "or DANET_EXTRA_REGRESSOR)"
            )


@functools.lru_cache(maxsize=8)
def _load_body(spec: BodySpec, fingerprint: tuple, gender: str, device: str | None):
    from pipeline.body.model import load_body_model

    return load_body_model(
        spec.model, gender=gender, extra_regressor=spec.extra_regressor or None, device=device
    )


@functools.lru_cache(maxsize=4)
def _load_parts(spec: BodySpec, fingerprint: tuple):
    from pipeline.body.parts import check_parts_fit_body, load_dense_parts

    if not spec.builtin and not spec.dense_parts:
        raise BodyModelFileError(
            f"{spec.model}: an SMPL body has no dense parts of its own: pass --dense-parts "
            "UV_Processed.mat (params.yaml body.dense_parts or DANET_DENSE_PARTS)"
        )
    parts = load_dense_parts(spec.parts_source)
    body = _load_body(spec, fingerprint, "neutral", None)
    check_parts_fit_body(parts, body.num_vertices, spec.model)
    return parts
