"""Where the render package keeps generated files (Warp kernels, flip tables).

Everything goes under the project cache folder ``<repo>/.cache`` (ignored by git), or under the folder
named by the environment variable ``DANET_CACHE_DIR`` when it is set; never under the user's home directory.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV_VAR = "DANET_CACHE_DIR"


def project_cache_dir() -> Path:
    """The project cache folder: ``$DANET_CACHE_DIR`` if set, else ``<repo>/.cache`` (created on demand)."""
    override = os.environ.get(CACHE_ENV_VAR)
    path = Path(override).expanduser().resolve() if override else REPO_ROOT / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_subdir(name: str) -> Path:
    """A named folder inside the project cache folder (created on demand)."""
    path = project_cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
