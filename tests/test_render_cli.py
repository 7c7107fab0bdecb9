"""The render stage's command lines: every flag defined once, by one function, through argparse's public API."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline.render_job import add_dataset_arguments

REPO = Path(__file__).resolve().parents[1]
DATASET_FLAGS = [
    "--dataset", "--root", "--manifests", "--out", "--split", "--device", "--workers", "--scheduler",
    "--shard-size", "--crop-size", "--margin", "--batch-size", "--renderer", "--body-model", "--dense-parts",
    "--extra-regressor", "--no-progress",
]  # fmt: skip
STAGE_FLAGS = ["--help", "--demo", "--size", "--backend", *DATASET_FLAGS]


def listed_flags(help_text: str) -> list[str]:
    """The long option of each entry of the help's option list (the lines that start an entry)."""
    return re.findall(r"^  (?:-\w[ ,]\s*)?(--[\w-]+)", help_text, flags=re.MULTILINE)


def test_the_stage_help_lists_each_flag_once():
    text = subprocess.run(
        [sys.executable, "-m", "stages.render_iuv", "--help"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    counts = Counter(listed_flags(text))
    assert sorted(counts) == sorted(STAGE_FLAGS)
    assert {flag: n for flag, n in counts.items() if n != 1} == {}


def test_the_render_job_module_has_the_dataset_flags_alone():
    text = add_dataset_arguments(argparse.ArgumentParser()).format_help()
    assert Counter(listed_flags(text)) == Counter(["--help", *DATASET_FLAGS])


def test_a_host_parser_defining_one_of_the_flags_is_a_loud_conflict():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device")
    with pytest.raises(argparse.ArgumentError, match="--device"):
        add_dataset_arguments(parser)


def test_dataset_goes_into_the_host_mode_group():
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--demo")
    add_dataset_arguments(parser, mode_group=mode)
    assert parser.parse_args(["--dataset", "x"]).dataset == "x"
    with pytest.raises(SystemExit):
        parser.parse_args(["--dataset", "x", "--demo", "y"])


@pytest.mark.parametrize("path", ["pipeline/render_job.py", "stages/render_iuv.py"])
def test_no_private_argparse(path):
    assert "_option_string_actions" not in (REPO / path).read_text()
