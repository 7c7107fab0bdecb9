"""README's Python snippets run as written (issue 18, item 5); so does the corrected one proposed in
docs/first-hour.md's "README text"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def run_block(code: str, name: str) -> None:
    exec(compile(code, name, "exec"), {"__name__": "__readme__"})  # noqa: S102 - our own documentation


README_BLOCKS = python_blocks(ROOT / "README.md")


@pytest.mark.parametrize("index", range(len(README_BLOCKS)))
def test_readme_python_snippet_runs(index):
    run_block(README_BLOCKS[index], f"README.md python block {index}")


def test_readme_has_python_snippets():
    assert README_BLOCKS, "README.md lost its Python examples"


def test_proposed_readme_snippet_runs():
    blocks = python_blocks(ROOT / "docs" / "first-hour.md")
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "docs/first-hour.md", "exec"), namespace)  # noqa: S102
    out = namespace["out"]
    assert tuple(out.vertices.shape) == (1, namespace["body"].num_vertices, 3)
    assert tuple(out.joints.shape[:2]) == (1, 24)
