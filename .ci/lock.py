"""The pinned environment: requirements.lock holds `name==version` for every package in the dependency
closure of pyproject.toml (its dependencies and all its extras except `anny`), torch excluded.

    python .ci/lock.py --refresh   # rewrite requirements.lock from this machine's installed packages
    python .ci/lock.py --check     # exit 1 unless the lock covers pyproject and matches what is installed

torch is installed first and pinned on its own (`pip install torch==2.13.0`, a CPU wheel here) so that no
other requirement pulls a CUDA build; its own dependencies (sympy, networkx, ...) are in the lock. The
lock is used as pip constraints: `pip install -c requirements.lock -e ".[dev]"`.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
EXCLUDED = {"torch"}  # installed first, pinned in README's commands
SKIPPED_EXTRAS = {"anny"}  # only for regenerating the body asset; not part of the two commands
HEADER = (
    "# Pinned dependency closure of pyproject.toml (torch excluded: it is installed first, pinned).\n"
    "# Regenerate: python .ci/lock.py --refresh   Check: python .ci/lock.py --check\n"
    '# Use: pip install torch==2.13.0 && pip install -c requirements.lock -e ".[dev]"\n'
)


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """The project's direct requirements: dependencies plus every optional extra but SKIPPED_EXTRAS."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra, items in project.get("optional-dependencies", {}).items():
        if extra not in SKIPPED_EXTRAS:
            reqs += [Requirement(r) for r in items]
    return reqs


def applies(req: Requirement, extras: set[str]) -> bool:
    """Whether `req`'s environment marker holds here for a package installed with `extras`."""
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))


def closure(roots: list[Requirement]) -> dict[str, str]:
    """{canonical name: installed version} of every installed package reachable from `roots`; EXCLUDED names
    are followed (their dependencies are pinned) but not listed. A root that is not installed is a KeyError."""
    found: dict[str, str] = {}
    todo: list[tuple[Requirement, bool]] = [(r, True) for r in roots]
    seen_extras: dict[str, set[str]] = {}
    while todo:
        req, is_root = todo.pop()
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            if is_root:
                raise KeyError(f"{req.name} (required by pyproject.toml) is not installed") from None
            continue  # an optional dependency of a dependency that this environment does not have
        extras = seen_extras.setdefault(name, set())
        new_extras = set(req.extras) - extras
        if name in found and not new_extras:
            continue
        extras |= new_extras
        found[name] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            if applies(sub, extras):
                todo.append((sub, False))
    return {name: version for name, version in found.items() if name not in EXCLUDED}


def lock_text(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} of a lock file; ValueError naming the line for anything but `name==version`."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: expected name==version, got {line!r}")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def check(pins: dict[str, str], roots: list[Requirement]) -> list[str]:
    """Problems: a root requirement missing from the lock or not satisfied by its pin; a locked package
    installed at another version or missing; an installed closure package absent from the lock."""
    problems = []
    for req in roots:
        name = canonicalize_name(req.name)
        if name in EXCLUDED:
            continue
        if name not in pins:
            problems.append(f"{req} (pyproject.toml) is not in the lock")
        elif not req.specifier.contains(Version(pins[name]), prereleases=True):
            problems.append(f"{req} (pyproject.toml) is not satisfied by the lock's {name}=={pins[name]}")
    for name, version in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} is locked but not installed")
            continue
        if Version(installed) != Version(version):
            problems.append(f"{name}: installed {installed}, locked {version}")
    try:
        extra = sorted(set(closure(roots)) - set(pins))
    except KeyError as err:
        problems.append(str(err.args[0]))
        extra = []
    problems += [f"{name} is installed and needed but not in the lock" for name in extra]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python .ci/lock.py", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--refresh", action="store_true", help="rewrite requirements.lock from this machine")
    mode.add_argument(
        "--check", action="store_true", help="verify the lock against pyproject and this machine"
    )
    parser.add_argument("--lock", type=Path, default=LOCK, help="lock file")
    args = parser.parse_args(argv)
    roots = project_requirements()
    if args.refresh:
        pins = closure(roots)
        tmp = args.lock.with_name(f".{args.lock.name}.tmp")
        tmp.write_text(lock_text(pins))
        tmp.replace(args.lock)
        print(f"lock: wrote {len(pins)} pins to {args.lock}")
        return 0
    if not args.lock.is_file():
        print(f"lock: {args.lock} not found; run python .ci/lock.py --refresh", file=sys.stderr)
        return 1
    try:
        pins = read_lock(args.lock)
    except ValueError as err:
        print(f"lock: {err}", file=sys.stderr)
        return 1
    problems = check(pins, roots)
    for problem in problems:
        print(f"lock: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"lock: {args.lock.name} ({len(pins)} pins) covers pyproject.toml and matches this environment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
