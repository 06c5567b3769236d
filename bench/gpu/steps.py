"""The steps of `bench/gpu.sh`, one subcommand each; every step writes its JSON section to the file it is given.

    python -m bench.gpu.steps install  SECTION.json --site DIR --tools DIR [--check]
    python -m bench.gpu.steps gsplat   SECTION.json [--check]
    python -m bench.gpu.steps pytest   SECTION.json [--check]
    python -m bench.gpu.steps render   SECTION.json [--check]
    python -m bench.gpu.steps pipeline SECTION.json --seconds S [--check]
    python -m bench.gpu.steps record   RESULTS.json STEP --rc RC --seconds S --box S --log LOG --log-from BYTES ...
    python -m bench.gpu.steps header   RESULTS.json --mode MODE --device NAME [--gpu INFO] [--pack-seconds S]

The avatar step is `bench/gpu/avatar.py`, the DeepSpeed one `bench/gpu/train.py`. `--check` is a step's CPU
dry-run: everything it imports and sets up, with the CUDA work swapped for the smallest CPU run of the same code
or, where there is none, the plan of what would run. `record` folds a step's outcome (status, time, box, the
log's tail on failure) and its section into the run's one results file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FPS_TARGET = 600.0
"""Rasterizer frames/s at 512² with 100k Gaussians on an H100-class GPU: twice FlashAvatar's 300 on an RTX 3090."""


def install(args) -> dict:
    """Install `.whl/*.whl` into --site and unpack `.whl/*.deb` into --tools, with a `bin/flite` that finds its
    libraries; with --check, pip installs for CPython 3.12 into a scratch folder instead (the wheels are checked:
    one version each, all for that interpreter), since this interpreter could not import them."""
    from bench.gpu.pack import PLATFORM_FLAGS, WHEEL_DIR

    wheels = sorted(str(p) for p in WHEEL_DIR.glob("*.whl"))
    if not wheels and args.check:
        return {"status": "skipped", "reason": f"nothing packed in {WHEEL_DIR} (bench/gpu.sh --pack fills it)"}
    if not wheels:
        raise SystemExit(f"{WHEEL_DIR}: no wheels (run bench/gpu.sh --pack here first)")
    site = Path(args.site)
    stamp = site / "pack.json"
    if not args.check and stamp.exists() and stamp.read_text() == (WHEEL_DIR / "pack.json").read_text():
        return {"installed": "already, from an earlier call on this machine", "site": str(site)}
    shutil.rmtree(site, ignore_errors=True)
    target_flags = [*PLATFORM_FLAGS] if args.check else []
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(site), *target_flags, *wheels]
    subprocess.run(command, check=True)
    tools = Path(args.tools)
    for deb in sorted(WHEEL_DIR.glob("*.deb")):
        unpack_deb(deb, tools)
    libs = tools / "usr" / "lib" / "x86_64-linux-gnu"
    wrapper = tools / "bin" / "flite"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    # Only flite sees the carried libraries: an LD_LIBRARY_PATH for every process could shadow the image's own.
    wrapper.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH="{libs}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
                       f'exec "{tools}/usr/bin/flite" "$@"\n')
    wrapper.chmod(0o755)
    voices = subprocess.run([str(wrapper), "-lv"], capture_output=True, text=True, check=True).stdout.strip()
    shutil.copy(WHEEL_DIR / "pack.json", stamp)
    installed = sorted(p.name for p in site.glob("*.dist-info"))
    result = {"site": str(site), "distributions": installed, "flite": voices}
    if args.check:
        shutil.rmtree(site)
        result["note"] = "installed for CPython 3.12 into a scratch folder (pip --python-version 3.12), then removed"
    return result


def unpack_deb(deb: Path, folder: Path) -> None:
    """`dpkg -x deb folder` in Python (an image need not have dpkg): a .deb is an ar archive holding data.tar.*."""
    import io
    import tarfile

    data = deb.read_bytes()
    offset = 8  # past the "!<arch>\n" magic
    while offset < len(data):
        name, size = data[offset:offset + 16].decode().strip().rstrip("/"), int(data[offset + 48:offset + 58])
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(data[offset + 60:offset + 60 + size])) as tar:
                tar.extractall(folder, filter="tar")
            return
        offset += 60 + size + size % 2
    raise SystemExit(f"{deb}: no data.tar member")


def gsplat_build(args) -> dict:
    """JIT-build gsplat's CUDA extension for this GPU's architecture, timed (a no-op when already built)."""
    import gsplat
    import torch
    from gsplat.cuda import _torch_impl  # noqa: F401  (the tests' reference maths: imports without CUDA)

    sources = sorted(Path(gsplat.__file__).parent.glob("cuda/csrc/*.cu"))
    plan = {"gsplat": gsplat.__version__, "cuda_sources": len(sources), "max_jobs": os.environ.get("MAX_JOBS")}
    if args.check:
        return plan | {"status": "checked", "reason": "no CUDA here: gsplat's python side imported, the JIT build "
                                                      "runs on the GPU machine"}
    from torch.utils.cpp_extension import _get_build_directory

    major, minor = torch.cuda.get_device_capability()
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", f"{major}.{minor}")
    library = Path(_get_build_directory("gsplat_cuda", verbose=False)) / "gsplat_cuda.so"
    built_before = library.exists()
    started = time.perf_counter()
    from gsplat.cuda._backend import _C

    seconds = time.perf_counter() - started
    if _C is None:
        raise SystemExit("gsplat: no CUDA extension (no toolkit found, or the build failed: see the log above)")
    nvcc = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    return plan | {"build_s": round(seconds, 1), "built_before": built_before,
                   "torch_cuda_arch_list": os.environ["TORCH_CUDA_ARCH_LIST"], "nvcc": nvcc[-1] if nvcc else None,
                   "extension_mib": round(library.stat().st_size / 2**20, 1), "gpu": torch.cuda.get_device_name(0)}


class _Outcomes:
    """pytest plugin: each test's outcome, and the end of the report of each one that failed."""

    def __init__(self):
        self.tests: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        self.collected: list[str] = []

    def pytest_collection_finish(self, session):
        self.collected = [item.nodeid for item in session.items]

    def pytest_collectreport(self, report):
        if report.failed:
            self.failures[report.nodeid or "collection"] = report.longreprtext[-2000:]

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.tests[report.nodeid] = report.outcome
        if report.failed:
            self.failures[report.nodeid] = report.longreprtext[-2000:]


def pytest_gpu(args) -> dict:
    """`pytest -m gpu` over the test files that mark any test gpu, in this process (--check: collection only)."""
    import pytest

    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "pytest.mark.gpu" in p.read_text())
    outcomes = _Outcomes()
    code = pytest.main(["-m", "gpu", "-q", "-p", "no:cacheprovider", *(["--collect-only"] if args.check else []),
                        *files], plugins=[outcomes])
    counts = {o: list(outcomes.tests.values()).count(o) for o in ("passed", "failed", "skipped")}
    result = {"files": files, "selected": outcomes.collected, "exit_code": int(code), **counts,
              "failures": outcomes.failures}
    if args.check:
        result |= {"status": "checked", "reason": "no CUDA here: collected only"}
    write_section(args.section, result)
    if code != 0 or outcomes.failures:
        raise SystemExit(f"pytest -m gpu: exit code {int(code)}, {len(outcomes.failures)} failure(s)")
    return result


def render_speed(args) -> dict:
    """bench/render.py's cases (256²/512², 10k-100k Gaussians, forward and forward+backward) with the gsplat
    backend on CUDA, in this process; with --check, one small case with the torch backend on CPU."""
    from bench import render as bench_render

    cases = [(size, n, backward) for size in bench_render.SIZES for n in bench_render.COUNTS
             for backward in (False, True)]
    if args.check:
        timing = argparse.Namespace(max_frame_s=20.0, budget_s=0.2, max_repeats=3)
        return {"status": "checked", "reason": f"no CUDA here: one small torch case on CPU; {len(cases)} gsplat "
                                              "cases would run",
                "cpu_check": bench_render.bench_case("torch", 64, 1_000, False, timing)}
    import torch

    timing = argparse.Namespace(max_frame_s=20.0, budget_s=1.0, max_repeats=200)
    result = {"device": bench_render.describe_device(torch.device("cuda")), "target_fps_512_100k": FPS_TARGET,
              "note": "bench/render.py's bench_case, gsplat backend, all cases in one process (peak memory reset "
                      "per case); the torch backend's CPU cases are left to bench/render.py", "runs": []}
    for size, n, backward in cases:
        result["runs"].append(bench_render.bench_case("gsplat", size, n, backward, timing))
        write_section(args.section, result)  # a timed-out step keeps the cases it finished
    forward = next(r for r in result["runs"]
                   if r["size"] == 512 and r["gaussians"] == 100_000 and r["mode"] == "forward")
    result["fps_512_100k_forward"] = forward.get("fps")
    result["meets_target"] = bool(forward.get("fps") and forward["fps"] >= FPS_TARGET)
    return result


def pipeline_rtf(args) -> dict:
    """The text→video pipeline's stage and end-to-end real-time factors and first-chunk latency at 512²
    (bench/pipeline.py --quick on the tests' tiny replica, trained on the spot)."""
    script = ROOT / "bench" / "pipeline.py"
    if args.check:
        import render.pipeline  # noqa: F401 - the pipeline must import in the GPU image, without Ray

        return {"status": "checked", "reason": f"render.pipeline imports here; on CUDA: python "
                                               f"{script.relative_to(ROOT)} --size 512 --quick"}
    subprocess.run([sys.executable, str(script), "--size", "512", "--quick"], cwd=ROOT, check=True,
                   timeout=max(args.seconds - 5, 1))
    return json.loads((ROOT / "bench" / "results" / "pipeline.json").read_text())


def record(args) -> None:
    """Fold one step's outcome and its section into the results file (rewritten whole, atomically)."""
    results = Path(args.results)
    data = json.loads(results.read_text()) if results.exists() else {}
    section = Path(args.section) if args.section else None
    result = None
    if section is not None and section.exists():
        try:
            result = json.loads(section.read_text())
        except json.JSONDecodeError:
            result = {"unreadable": section.read_text()[-1000:]}
    own_status = result.pop("status", None) if isinstance(result, dict) else None
    if args.skip:
        status, result = "skipped", {"reason": args.skip}
    elif args.rc in (124, 137):
        status = "timed out"
    elif args.rc:
        status = "failed"
    else:
        status = own_status or "ok"
    entry = {"status": status, "seconds": round(args.seconds, 1), "box_s": args.box, "command": args.command}
    if isinstance(result, dict) and "reason" in result:
        entry["reason"] = result.pop("reason")
    if result:
        entry["result"] = result
    if args.rc:
        with open(args.log, "rb") as log:
            log.seek(args.log_from)
            entry["log_tail"] = log.read().decode(errors="replace").splitlines()[-40:]
    data.setdefault("steps", {})[args.step] = entry
    write_section(str(results), data)
    print(f"== {args.step}: {status} in {args.seconds:.1f} s (box {args.box} s)", flush=True)


def header(args) -> None:
    """Start the results file: the mode, the machine, and what was packed."""
    from bench.gpu.pack import WHEEL_DIR

    pack = WHEEL_DIR / "pack.json"
    data = {"mode": args.mode, "device": args.device, "gpu": args.gpu or None,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "pack": json.loads(pack.read_text()) if pack.exists() else None, "steps": {}}
    if args.pack_seconds:
        data["pack_seconds_this_run"] = float(args.pack_seconds)
    write_section(args.results, data)


def write_section(path: str, data: dict) -> None:
    with tempfile.NamedTemporaryFile("w", dir=Path(path).parent, suffix=".json", delete=False) as tmp:
        tmp.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp.name, path)


STEPS = {"install": install, "gsplat": gsplat_build, "pytest": pytest_gpu, "render": render_speed,
         "pipeline": pipeline_rtf}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="subcommand", required=True)
    for name in STEPS:
        step = commands.add_parser(name)
        step.add_argument("section", help="JSON file this step writes")
        step.add_argument("--check", action="store_true", help="CPU dry-run of the step")
        step.add_argument("--seconds", type=float, default=120.0, help="the step's time box")
        step.add_argument("--site", help="install: where the wheels go")
        step.add_argument("--tools", help="install: where the Debian packages are unpacked")
    rec = commands.add_parser("record")
    rec.add_argument("results")
    rec.add_argument("step")
    for flag, kind in (("--rc", int), ("--seconds", float), ("--box", int), ("--log", str), ("--log-from", int),
                       ("--section", str), ("--command", str), ("--skip", str)):
        rec.add_argument(flag, type=kind, default=None if kind is str else 0)
    head = commands.add_parser("header")
    head.add_argument("results")
    head.add_argument("--mode", required=True)
    head.add_argument("--device", required=True)
    head.add_argument("--pack-seconds", default="", help="how long packing took in this run (dry-run)")
    head.add_argument("--gpu", default="", help="nvidia-smi's name, driver and memory")
    args = parser.parse_args()
    if args.subcommand == "record":
        record(args)
    elif args.subcommand == "header":
        header(args)
    else:
        write_section(args.section, STEPS[args.subcommand](args))


if __name__ == "__main__":
    main()
