"""The README's DVC promises: a second `dvc repro` does nothing, and changing a parameter in params.yaml reruns
only the stages it feeds (a `train:` knob reruns train and evaluate).

Two oracles. A hand-written table of which stages each params.yaml section must rerun, checked against the
graph that dvc.yaml's deps / outs / params declare and against the `${section.key}` each stage's command
reads. And real DVC on a copy of dvc.yaml and params.yaml in a temporary folder, every command replaced by a
stand-in that writes the stage's outputs from its interpolated command line (so an output changes exactly
when a parameter the command reads changes), the code dependencies by placeholder files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"\$\{(\w+)\.[\w.]+\}")

# params.yaml section -> the stages `dvc repro` reruns when one of its values changes (README, "Two commands";
# pretrain_iuv is frozen, and the real-data stages exist only for the datasets listed in real_datasets).
RERUNS = {
    "synth": {"synthesize", "ingest_synth", "render_synth", "train", "evaluate"},
    "render": {"render_synth", "train", "evaluate"},
    "train": {"train", "evaluate"},
    "pretrain_iuv": set(),
    "body": set(),
}


def pipeline(real_datasets: list[str]) -> dict[str, dict]:
    """dvc.yaml's stages with foreach stages expanded over `real_datasets` (name@item as DVC names them)."""
    stages = {}
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        for item in real_datasets:
            text = yaml.safe_dump(stage["do"]).replace("${item}", item)
            stages[f"{name}@{item}"] = yaml.safe_load(text)
    return stages


def paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def commands(stage: dict) -> str:
    cmd = stage["cmd"]
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def inside(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def downstream(stages: dict[str, dict], start: set[str]) -> set[str]:
    """`start` and every stage that depends, directly or not, on their outputs (frozen stages excluded)."""
    ran, changed = set(), True
    ran |= {s for s in start if not stages[s].get("frozen")}
    while changed:
        changed = False
        for name, stage in stages.items():
            if name in ran or stage.get("frozen"):
                continue
            outs = [o for s in ran for o in paths(stages[s].get("outs"))]
            if any(inside(d, o) for d in paths(stage.get("deps")) for o in outs):
                ran.add(name)
                changed = True
    return ran


@pytest.mark.parametrize("real_datasets", [[], ["h36m"]])
def test_each_stage_declares_exactly_the_params_its_command_reads(real_datasets):
    for name, stage in pipeline(real_datasets).items():
        read = set(REFERENCE.findall(commands(stage)))
        assert set(stage.get("params", [])) == read, name


def test_a_param_section_reruns_the_stages_the_readme_says():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(RERUNS) == {k for k, v in params.items() if isinstance(v, dict)}
    stages = pipeline(params["real_datasets"])
    for section, expected in RERUNS.items():
        readers = {n for n, s in stages.items() if section in s.get("params", [])}
        assert downstream(stages, readers) == expected, section
    with_h36m = pipeline(["h36m"])
    readers = {n for n, s in with_h36m.items() if "body" in s.get("params", [])}
    assert downstream(with_h36m, readers) == {"body_identity@h36m", "render_iuv@h36m"}


# -- real DVC on a stand-in project ------------------------------------------------------------------------

STAND_IN = '''"""stand_in.py OUT... -- DEP... -- COMMAND: writes every OUT from COMMAND's text and a digest of the DEPs'
contents, so that an output changes exactly when its command line or its inputs change, as a real stage's."""
import hashlib
import sys
from pathlib import Path

first = sys.argv.index("--")
second = sys.argv.index("--", first + 1)
digest = hashlib.sha256()
for dep in sys.argv[first + 1 : second]:
    for path in sorted(p for p in [Path(dep), *Path(dep).rglob("*")] if p.is_file()):
        digest.update(str(path).encode() + path.read_bytes())
text = " ".join(sys.argv[second + 1 :]) + " " + digest.hexdigest()
for out in sys.argv[1:first]:
    path = Path(out)
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / "written_by.txt").write_text(text)
'''


def stand_in_project(where: Path) -> Path:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    every_dep = [d for s in dvc["stages"].values() for d in paths(s.get("do", s).get("deps"))]
    for stage in dvc["stages"].values():
        body = stage.get("do", stage)
        outs = paths(body.get("outs")) + paths(body.get("metrics"))
        # what other stages read inside an output folder (data/shards/synth/train, .../mean_params.npz)
        within = [d for d in every_dep for o in outs if d.startswith(o.rstrip("/") + "/")]
        deps = " ".join(paths(body.get("deps")))
        body["cmd"] = f"{sys.executable} stand_in.py {' '.join(outs + within)} -- {deps} -- {commands(body)}"
    (where / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    shutil.copy(REPO / "params.yaml", where / "params.yaml")
    (where / "stand_in.py").write_text(STAND_IN)
    stages = pipeline(yaml.safe_load((REPO / "params.yaml").read_text())["real_datasets"])
    produced = [o for s in stages.values() if not s.get("frozen") for o in paths(s.get("outs"))]
    for stage in stages.values():
        for dep in [*paths(stage.get("deps")), *(paths(stage.get("outs")) if stage.get("frozen") else [])]:
            if any(inside(dep, o) for o in produced):
                continue
            path = where / dep
            if path.suffix:  # code and configs: a placeholder file, or one inside a placeholder folder
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"placeholder for {dep}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder.txt").write_text(dep)
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=where, check=True)
    return where


def repro(where: Path) -> set[str]:
    done = subprocess.run(["dvc", "repro"], cwd=where, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return set(re.findall(r"Running stage '([^']+)'", done.stdout + done.stderr))


def set_param(where: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((where / "params.yaml").read_text())
    params[section][key] = value
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_dvc_repro_twice_is_a_no_op_and_a_param_reruns_only_its_stages(tmp_path):
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    where = stand_in_project(tmp_path)
    assert repro(where) == {"synthesize", "ingest_synth", "render_synth", "train", "evaluate"}
    assert repro(where) == set()  # the second `dvc repro` does nothing
    for section, key, value in (("train", "lr", 0.001), ("render", "margin", 1.3), ("synth", "n", 10)):
        set_param(where, section, key, value)
        assert repro(where) == RERUNS[section], section
        assert repro(where) == set(), section
    set_param(where, "pretrain_iuv", "steps", 5)  # the frozen stage's knob: nothing reruns
    assert repro(where) == set()
