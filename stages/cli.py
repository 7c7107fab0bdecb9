"""The shared shape of every stage's command line: `--help` shows the module docstring's first paragraph as
the description and its remaining paragraphs (usage line excluded) as the epilog, layout kept."""

from __future__ import annotations

import argparse


def stage_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """An ArgumentParser for `python -m stages.<module>`; `doc` is the stage's module docstring, whose
    paragraphs are: summary, usage example, then anything else (shown after the options)."""
    paragraphs = doc.strip().split("\n\n")
    return argparse.ArgumentParser(
        prog=f"python -m stages.{module}",
        description=paragraphs[0].strip(),
        epilog="\n\n".join(paragraphs[2:]) or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
