"""A newcomer's first hour, the command lines: pinned environment, --help with defaults, honest devices,
quiet Warp on a CPU machine (issue 18, items 1 and 5)."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem not in ("__init__", "cli"))
sys.path.insert(0, str(ROOT / ".ci"))
import lock  # noqa: E402  (.ci/lock.py)


class _Captured(Exception):
    pass


def stage_parser_of(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The ArgumentParser a stage's main() builds, caught at its parse_args call."""
    seen = {}

    def capture(self, *args, **kwargs):
        seen["parser"] = self
        raise _Captured

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    mod = importlib.import_module(f"stages.{module}")
    with pytest.raises(_Captured):
        mod.main([])
    return seen["parser"]


@pytest.mark.parametrize("module", STAGES)
def test_every_help_shows_defaults(module, monkeypatch):
    parser = stage_parser_of(module, monkeypatch)
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping (argparse also breaks words at hyphens)
    text = parser.format_help()
    for action in parser._actions:
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or not action.option_strings:
            continue
        shown = str(default)
        if module == "fetch" and action.dest == "sources":
            continue  # its help names the default in words
        assert shown in text, f"stages.{module} --help does not show {action.option_strings[0]}'s default"


@pytest.mark.parametrize(
    ("module", "flag"), [("train", "--out"), ("evaluate", "--out"), ("synthesize", "--out")]
)
def test_dvc_tracked_out_defaults_say_so(module, flag, monkeypatch):
    parser = stage_parser_of(module, monkeypatch)
    action = next(a for a in parser._actions if flag in a.option_strings)
    assert "DVC-tracked" in action.help


def test_tracked_out_note_only_when_defaulted(capsys):
    from stages.cli import note_tracked_out

    default = Path("metrics/demo")
    note_tracked_out("evaluate", Path("metrics/demo"), default)  # given explicitly: an equal, other object
    assert capsys.readouterr().err == ""
    note_tracked_out("evaluate", default, default)
    assert "metrics/demo" in capsys.readouterr().err


def test_cuda_asked_for_and_missing_is_one_line(capsys, monkeypatch):
    import torch

    from stages.cli import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("predict", "cuda") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err
    assert resolve_device("predict", "auto").type == "cpu"


def test_evaluate_cuda_missing_exits_2(monkeypatch, tmp_path):
    import torch

    from stages import evaluate

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = evaluate.main(
        [
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--dataset",
            "x",
            "--device",
            "cuda",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2


@pytest.mark.skipif(
    __import__("pipeline.render.raster_warp", fromlist=["cuda_driver_present"]).cuda_driver_present(),
    reason="this machine has the NVIDIA driver: Warp has nothing to warn about",
)
def test_warp_init_prints_nothing_without_driver():
    code = "from pipeline.render.rasterize import warp_available; print(warp_available())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
    assert "CUDA" not in out.stderr, out.stderr


# -- the pinned environment ---------------------------------------------------------------------------------


def test_lock_covers_pyproject_and_matches_this_environment():
    pins = lock.read_lock(ROOT / "requirements.lock")
    assert "torch" not in pins  # installed first, on its own
    for name in ("numpy", "opencv-python-headless", "warp-lang", "dvc", "pytest", "sympy"):
        assert name in pins  # direct, dev and torch's own dependencies are all pinned
    assert lock.check(pins, lock.project_requirements()) == []


def test_lock_check_finds_a_drifted_pin_and_a_missing_requirement():
    pins = lock.read_lock(ROOT / "requirements.lock")
    drifted = {**pins, "numpy": "1.0.0"}
    problems = lock.check(drifted, lock.project_requirements())
    assert any("numpy>=1.26" in p and "not satisfied" in p for p in problems)
    assert any(p.startswith("numpy: installed") for p in problems)
    missing = {k: v for k, v in pins.items() if k != "scipy"}
    assert any(
        "scipy" in p and "not in the lock" in p for p in lock.check(missing, lock.project_requirements())
    )


def test_lock_file_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.lock"
    path.write_text("# comment\nnumpy==2.0\nscipy>=1\n")
    with pytest.raises(ValueError, match=r"bad.lock:3"):
        lock.read_lock(path)


def test_ci_runs_the_locked_install_and_the_lock_check():
    run = (ROOT / ".ci" / "run").read_text()
    assert (
        'pip install torch==2.13.0 && pip install -c requirements.lock -e ".[dev]" && python -m pytest -q'
        in run
    )
    assert "python .ci/lock.py --check" in run


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_command_is_readmes_test_command():
    run = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in run.splitlines() if "pytest" in line).strip()
    assert command in _bash_blocks((ROOT / "README.md").read_text())


def test_docs_readme_text_has_both_locked_commands():
    blocks = _bash_blocks((ROOT / "docs" / "first-hour.md").read_text())
    assert "pip install torch==2.13.0 && pip install -c requirements.lock -e . && dvc repro" in blocks
    run = (ROOT / ".ci" / "run").read_text()
    assert next(line for line in run.splitlines() if "pytest" in line).strip() in blocks
