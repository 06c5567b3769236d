"""The GPU machine's Python, simulated on this one: run a command with every module that machine lacks unimportable.

The GPU machine `bench/gpu.sh` runs on has its image's packages (`image_packages.txt`, read off such a
machine) plus the wheels `bench/gpu/pack.py` carries there. Everything else installed here — Ray, wandb,
moto, mediapipe, piper, ... — stays behind. `bench/gpu.sh --dry-run` runs each step through this wrapper,
so an import the GPU machine could not satisfy fails here, on a CPU, before any GPU time is spent.

    python bench/gpu/image.py -m pytest ...          # like `python -m pytest ...`
    python bench/gpu/image.py -c "import ray"         # like `python -c ...`: ModuleNotFoundError
    python bench/gpu/image.py --list                  # the distributions left behind

It checks names, not versions: the image's own versions (numpy, scipy, ...) may differ from this venv's.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE_PACKAGES = Path(__file__).resolve().parent / "image_packages.txt"
STANDINS = Path(__file__).resolve().parent / "standins"
"""Modules standing in there for ones left behind (`av`); on sys.path there as here."""
OWN_DISTRIBUTION = "replica"
ALIASES = {"opencv-python": "opencv-python-headless", "opencv-contrib-python": "opencv-python-headless"}
"""Distributions here whose modules the image has under another distribution's name."""


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> set[str]:
    """The distributions on the GPU machine's image (normalized names)."""
    lines = IMAGE_PACKAGES.read_text().splitlines()
    return {normalize(line) for line in lines if line.strip() and not line.startswith("#")}


def carried_packages() -> set[str]:
    """The distributions bench/gpu/pack.py carries there as wheels (normalized names)."""
    from bench.gpu.pack import WHEELS

    return {normalize(wheel.name) for wheel in WHEELS}


def left_behind() -> set[str]:
    """Distributions installed here that are neither on the image nor carried (normalized names)."""
    there = image_packages() | carried_packages() | {OWN_DISTRIBUTION}
    installed = {normalize(d.metadata["Name"]) for d in md.distributions() if d.metadata["Name"]}
    return {name for name in installed if ALIASES.get(name, name) not in there}


def blocked_modules(behind: set[str]) -> list[str]:
    """Top-level modules that only left-behind distributions provide, less those a stand-in replaces."""
    standins = {path.stem for path in STANDINS.glob("*.py")}
    return sorted(module for module, dists in md.packages_distributions().items()
                  if module not in standins and all(normalize(d) in behind for d in dists))


def simulate(behind: set[str]) -> None:
    """In this process: `import ray` raises ModuleNotFoundError and find_spec("ray") gives None (as where it is not
    installed), and importlib.metadata lists no left-behind distribution (pytest loads no plugin of theirs)."""
    for module in blocked_modules(behind):
        sys.modules.setdefault(module, None)
    everything = md.distributions
    md.distributions = lambda **kwargs: (d for d in everything(**kwargs)
                                         if normalize(d.metadata["Name"] or "") not in behind)


def main(argv: list[str]) -> None:
    # Like `python -m` / `python SCRIPT`, but with the repository root first on sys.path instead of this folder
    # (as on the GPU machine, where the steps run with `python -m` from the root).
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(ROOT), str(STANDINS)] + [p for p in sys.path if Path(p or ".").resolve() != here]
    behind = left_behind()
    if argv == ["--list"]:
        print(" ".join(sorted(behind)))
        return
    if not argv:
        raise SystemExit("usage: bench/gpu/image.py (-m MODULE | -c CODE | SCRIPT) [ARGS...] | --list")
    simulate(behind)
    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
