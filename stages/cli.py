"""The shared shape of every stage's command line: `--help` shows the module docstring's first paragraph as
the description and its remaining paragraphs (usage line excluded) as the epilog, layout kept, and every
option's default; devices are resolved the same way everywhere."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Description and epilog as written; each option's help ends with its default ("(default: X)") unless
    the default is None/False or the help text already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return text
        if "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)".strip()


def stage_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """An ArgumentParser for `python -m stages.<module>`; `doc` is the stage's module docstring, whose
    paragraphs are: summary, usage example, then anything else (shown after the options)."""
    paragraphs = doc.strip().split("\n\n")
    return argparse.ArgumentParser(
        prog=f"python -m stages.{module}",
        description=paragraphs[0].strip(),
        epilog="\n\n".join(paragraphs[2:]) or None,
        formatter_class=HelpFormatter,
    )


DVC_TRACKED = "(DVC-tracked: the pipeline's own output, which `dvc repro` rewrites)"


def note_tracked_out(stage: str, out, default) -> None:
    """One stderr line when `out` is the DVC-tracked `default` object itself, i.e. --out was not given
    (argparse hands a non-string default over as is)."""
    if out is default:
        print(f"{stage}: writing into {out}, the DVC pipeline's output (pass --out to write elsewhere)",
              file=sys.stderr)  # fmt: skip


def resolve_device(stage: str, name: str) -> torch.device | None:
    """ "auto" -> cuda when available else cpu; "cuda" without a CUDA device prints one line and gives None
    (the caller exits 2)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        print(f"{stage}: --device cuda was asked for but no CUDA device is available (use --device cpu)",
              file=sys.stderr)  # fmt: skip
        return None
    return torch.device(name)
