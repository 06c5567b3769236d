"""Rendering benchmarks → bench/results/render.json.

Rasterizer part: frames per second of `render.raster.rasterize` alone, for every usable backend,
at 256² and 512² with 10k / 50k / 100k Gaussians, forward only (no autograd) and forward + backward
(all Gaussian parameters require grad), median and best of several repeats, with peak memory
(peak RSS above the level before the first frame, each case in a fresh process, on CPU;
torch.cuda.max_memory_allocated on GPU). The scene
is a head-sized shell of Gaussians filling ~80% of the frame, with splat sizes scaled so the shell
stays covered as N grows — the load avatar training puts on the renderer. A combination whose
first frame takes longer than --max-frame-s is recorded as skipped rather than timed.

Each part of this benchmark owns one key of the JSON file and leaves the others as they are.

    python bench/render.py [--max-frame-s 20] [--budget-s 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `render` package it benchmarks.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from render.raster import DEFAULT_TILE_SIZE, available_backends, rasterize  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "render.json"
SIZES = (256, 512)
COUNTS = (10_000, 50_000, 100_000)


def head_scene(n: int, size: int, device: torch.device, seed: int = 0) -> dict:
    """N Gaussians on a 12 cm sphere shell 60 cm in front of a size×size camera."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    focal = 0.8 * size * 0.6 / 0.24  # the 24 cm head spans 80% of the frame
    params = {
        "means": dirs * 0.12 * (1 + 0.05 * torch.rand(n, 1, generator=gen)),
        "quats": torch.randn(n, 4, generator=gen),
        "scales": (torch.rand(n, 3, generator=gen) * 0.004 + 0.001) * math.sqrt(10_000 / n),
        "opacities": torch.rand(n, generator=gen) * 0.6 + 0.4,
        "colors": torch.rand(n, 3, generator=gen),
    }
    viewmat = torch.eye(4)
    viewmat[2, 3] = 0.6
    K = torch.tensor([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]])
    return {
        "params": {k: v.to(device) for k, v in params.items()},
        "viewmats": viewmat[None].to(device),
        "Ks": K[None].to(device),
    }


def time_frame(scene: dict, size: int, backend: str, backward: bool) -> float:
    params = {k: v.detach().requires_grad_(backward) for k, v in scene["params"].items()}
    sync = torch.cuda.synchronize if scene["Ks"].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.set_grad_enabled(backward):
        images, alphas, _ = rasterize(
            **params, viewmats=scene["viewmats"], Ks=scene["Ks"], width=size, height=size, backend=backend
        )
        if backward:
            (images.sum() + alphas.sum()).backward()
    sync()
    return time.perf_counter() - start


def bench_case(backend: str, size: int, n: int, backward: bool, args) -> dict:
    """Time one case in this process, which must be fresh: peak RSS is a lifetime maximum."""
    device = torch.device("cuda" if backend == "gsplat" else "cpu")
    scene = head_scene(n, size, device)
    case = {"backend": backend, "size": size, "gaussians": n, "mode": "forward+backward" if backward else "forward"}
    case["tile_size"] = DEFAULT_TILE_SIZE[backend]
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline_cuda = torch.cuda.memory_allocated()
    first = time_frame(scene, size, backend, backward)  # also warms caches / kernels
    if first > args.max_frame_s:
        return case | {"skipped": f"first frame took {first:.1f} s > {args.max_frame_s} s"}
    # At least 3, so one disturbed frame cannot pass for the median.
    repeats = max(3, min(args.max_repeats, int(args.budget_s / first)))
    times = [time_frame(scene, size, backend, backward) for _ in range(repeats)]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - baseline_cuda
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline_rss
    median = statistics.median(times)
    return case | {
        "repeats": repeats,
        "median_s": round(median, 4),
        "best_s": round(min(times), 4),
        "fps": round(1 / median, 2),
        "peak_memory_mb": round(peak / 2**20, 1),
        "memory_measure": "cuda max_memory_allocated" if device.type == "cuda" else "RSS above the scene's",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def describe_device(device: torch.device) -> dict:
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line),
        platform.processor(),
    )
    info = {
        "cpu": cpu_model,
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def rasterizer_results(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backends = [b for b in available_backends() if b != "reference"]  # the dense spec is O(N·H·W)
    runs = []
    for backend in backends:
        for size in SIZES:
            for n in COUNTS:
                for backward in (False, True):
                    # One process per case, so each peak-memory figure is that case's alone.
                    spec = json.dumps({"backend": backend, "size": size, "gaussians": n, "backward": backward})
                    case = run_case_disturbance_free(spec, device, args)
                    runs.append(case)
                    print(json.dumps(case), flush=True)
    return {
        "device": describe_device(device),
        "scene": "sphere shell of Gaussians (12 cm radius, 60 cm away) filling ~80% of the frame",
        "note": "median and best of the repeats, timed when other processes left the CPU idle; a case whose median exceeded twice its best was rerun (attempt)",
        "runs": runs,
    }


def run_case_disturbance_free(spec: str, device: torch.device, args, attempts: int = 3) -> dict:
    """Run one case in a fresh process; when its median is over twice its best frame, another
    process took the CPU mid-case, so run it again (keeping the attempt with the lowest median)."""
    best_case = None
    for attempt in range(1, attempts + 1):
        busy = wait_for_quiet_cpu(args.quiet_wait_s) if device.type == "cpu" else None
        child = subprocess.run(
            [sys.executable, __file__, "--case", spec, *_shared_flags(args)], capture_output=True, text=True, check=True
        )
        case = json.loads(child.stdout.strip().splitlines()[-1]) | {"attempt": attempt}
        if busy is not None:
            case["other_cpu_busy_before"] = round(busy, 2)
        if "median_s" not in case:
            return case
        if best_case is None or case["median_s"] < best_case["median_s"]:
            best_case = case
        if case["median_s"] <= 2 * case["best_s"]:
            break
    return best_case


def wait_for_quiet_cpu(max_wait_s: float, quiet: float = 0.25) -> float:
    """Wait (up to max_wait_s) until other processes use under `quiet` of the CPUs; return that share.

    On a shared 2-core machine, torch's OpenMP threads stall badly when another process takes a
    core, so a frame can be 10-30x slower than on a quiet machine; timing only quiet moments keeps
    the numbers about the renderer.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = _cpu_busy_fraction(1.0)
        if busy < quiet or time.monotonic() > deadline:
            return busy
        time.sleep(2.0)


def _cpu_busy_fraction(interval_s: float) -> float:
    def snapshot():
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total0, idle0 = snapshot()
    time.sleep(interval_s)
    total1, idle1 = snapshot()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def _shared_flags(args) -> list[str]:
    return ["--max-frame-s", str(args.max_frame_s), "--budget-s", str(args.budget_s), "--max-repeats", str(args.max_repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-frame-s", type=float, default=20.0, help="skip a case whose first frame is slower")
    parser.add_argument("--budget-s", type=float, default=10.0, help="time spent on repeats per case")
    parser.add_argument("--max-repeats", type=int, default=10)
    parser.add_argument("--quiet-wait-s", type=float, default=120.0, help="wait this long for an idle CPU per case")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print its JSON
    args = parser.parse_args()
    if args.case:
        spec = json.loads(args.case)
        print(json.dumps(bench_case(spec["backend"], spec["size"], spec["gaussians"], spec["backward"], args)))
        return

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["rasterize"] = rasterizer_results(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
