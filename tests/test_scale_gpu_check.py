"""bench/gpu_check: skips cleanly without CUDA, and every section's code runs (on CPU, at toy sizes)."""

from __future__ import annotations

import json

import pytest
import torch

from bench.gpu_check import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the real check applies")
def test_without_cuda_it_says_so_and_exits_0(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "check.json")]) == 0
    result = json.loads((tmp_path / "check.json").read_text())
    assert result["cuda"] is False and "no CUDA" in result["skipped"]
    assert json.loads(capsys.readouterr().out) == result


@pytest.mark.slow
def test_dry_run_on_cpu_runs_every_section(tmp_path, capsys):
    assert main(["--dry-run-cpu", "--out", str(tmp_path / "check.json")]) == 0
    result = json.loads((tmp_path / "check.json").read_text())
    assert result["failed_sections"] == []
    assert result["raster"]["same_face_vs_cpu"] == {"torch_56": 1.0, "torch_224": 1.0}
    assert result["train"]["steps"] == 2 and result["train"]["nonfinite_skipped"] == 0
    assert result["predict"]["exit_code_cpu"] == 0 and result["predict"]["persons"] == 4
