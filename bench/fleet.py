"""Fleet scheduling overhead and a tiny real fleet's throughput → bench/results/fleet.json.

Overhead: `cluster.fleet.run_fleet` over 100, 1,000 and 10,000 avatars whose steps are a no-op (`noop_step`:
it writes the step's record, as a real step does, and nothing else), on a local Ray, through the same
scheduler, check tasks and step tasks as a real fleet. Per avatar that is one check task and one task per step,
up to `--until` (default voice: ingest, track, voice). The finetune step asks Ray for no CPU (it only drives a
Tune search), so Ray runs each concurrent one in a worker process of its own, started on demand; a 100-avatar
fleet through every step (finetune, then the avatar step publishing replica.json) measures that apart.
Reported per size: wall seconds, milliseconds per avatar and per task, and the driver's peak memory (peak
RSS, reset before the fleet, and its growth over the RSS before it). Each size runs in a fresh process with its
own local Ray, after a 16-avatar warm-up that starts the workers.
Target (issue 13): < 20 ms per avatar at 1,000, growing linearly.

Throughput: a real fleet of `--real` tiny avatars (a two-second talking astronaut, the tiny preset shrunk as
in the tests) through ingest → track → voice (every step with `--animator`: fine-tuning needs a foundation
animator); avatars/hour on this machine and the step taking longest.

Run: .venv/bin/python bench/fleet.py [--sizes 100 1000 10000] [--real 3] [--animator runs/demo/animator/model.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder would come first on sys.path; the repository root must instead.
sys.path = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench.machine import describe_machine  # noqa: E402
from personalize.bundle import STEPS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fleet.json"
TINY = ["creation.min_seconds=1", "creation.track_size=96", "creation.face_check_frames=2", "avatar.image_size=48",
        "avatar.iterations=30", "avatar.densify_from=10", "avatar.densify_until=25", "avatar.densify_every=5",
        "avatar.max_gaussians=4000", "refine.channels=8", "refine.levels=1", "refine.disc_channels=8",
        "refine.iterations=4", "refine.batch_size=2", "tracking.rigid_iterations=30", "tracking.iterations=60",
        "tracking.photometric_iterations=4", "tracking.photometric_frames=2", "tracking.photometric_size=32",
        "tracking.texture_size=32"]
"""The tiny preset shrunk to a few CPU seconds per step (as tests/cluster/test_create.py's settings)."""
EVERY_STEP_AVATARS = 100
"""Size of the no-op fleet run through every step, the 0-CPU finetune step included."""


def noop_step(step, bundle, video, cfg, inputs, s3, device, renderer) -> dict:
    """A step that does no work: it only records itself, as `cluster.create.run_step` does after its work."""
    from personalize.bundle import StepRecord, write_step

    record = StepRecord(step, inputs, {}, {}, 0.0)
    write_step(bundle, record)
    return record.__dict__


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset the peak RSS (VmHWM) to the current RSS
        f.write("5")


def _avatars(folder: Path, count: int, video: str) -> str:
    path = folder / f"avatars-{count}.jsonl"
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"id": f"a{i:05d}", "video": video}) + "\n")
    return str(path)


def untrained_animator(url: str) -> str:
    """An animator export of the tiny sizes with untrained weights: the fleet checks the foundation exists
    before it starts a fleet that fine-tunes; the no-op steps never read it."""
    from foundation.animation.model import Animator
    from foundation.audio.encoder import AudioEncoder
    from foundation.models import animator_export, save_export
    from launch.config import load_config

    cfg = load_config("tiny")
    save_export(animator_export(Animator(cfg.animator), AudioEncoder(cfg.audio_encoder), cfg.features, ""), url)
    return url


def one_size(count: int, until: str | None) -> dict:
    """Time a no-op fleet of `count` avatars up to step `until` (None: every step) in this process (its own
    local Ray); returns the row."""
    from cluster.fleet import FleetConfig, run_fleet
    from cluster.runtime import RuntimeConfig, init_ray
    from launch.config import load_config
    from launch.fleet_cli import settings_for
    from personalize.bundle import list_bundles

    runtime = RuntimeConfig(num_cpus=os.cpu_count())
    init_ray(runtime)
    cfg = FleetConfig(until=until)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        folder = Path(tmp)
        foundation = [f"finetune.foundation={untrained_animator(str(folder / 'animator.pt'))}"]
        settings = settings_for("tiny", foundation, load_config("tiny", foundation))
        video = folder / "person.mp4"
        video.write_bytes(os.urandom(64 * 1024))  # hashed by the check, never decoded by the no-op
        run_fleet(_avatars(folder, 16, str(video)), str(folder / "warmup"), settings, cfg, runtime=runtime,
                  show_progress=False, step_fn=noop_step)
        avatars = _avatars(folder, count, str(video))
        rss_before = _rss_mb("VmRSS")
        _reset_peak_rss()
        started = time.perf_counter()
        report = run_fleet(avatars, str(folder / "fleet"), settings, cfg, runtime=runtime, show_progress=False,
                           step_fn=noop_step)
        seconds = time.perf_counter() - started
        peak = _rss_mb("VmHWM")
        last = sum(row["last_step"] == cfg.steps()[-1] for row in list_bundles(str(folder / "fleet")))
    tasks = count * (1 + len(cfg.steps()))
    return {"avatars": count, "steps": list(cfg.steps()), "seconds": round(seconds, 2),
            "ms_per_avatar": round(1000 * seconds / count, 2),
            "ms_per_task": round(1000 * seconds / tasks, 3), "tasks_per_avatar": 1 + len(cfg.steps()),
            "driver_rss_before_MB": round(rss_before, 1), "driver_peak_rss_MB": round(peak, 1),
            "driver_peak_growth_MB": round(peak - rss_before, 1), "done": report["done"],
            "failed": report["failed"], "bundles_at_last_step": last, "max_in_flight": cfg.max_in_flight}


def real_fleet(count: int, animator: str | None) -> dict:
    """A real tiny fleet of `count` copies of a two-second talking astronaut: every step when a foundation
    `animator` is given (fine-tuning needs one), else ingest → track → voice."""
    import numpy as np

    from cluster.fleet import FleetConfig, run_fleet
    from cluster.runtime import RuntimeConfig, init_ray
    from datasets.media import write_mp4
    from foundation.tts import synthesize
    from launch.config import load_config
    from launch.fleet_cli import settings_for
    from tests.datasets.talking import astronaut_frames

    runtime = RuntimeConfig(num_cpus=os.cpu_count())
    init_ray(runtime)
    with tempfile.TemporaryDirectory(prefix="fleet-real-") as tmp:
        folder = Path(tmp)
        speech = synthesize("Hello, this is one of many avatars in the fleet.", "flite:slt").wav
        speech = np.pad(speech, (0, max(0, 50 * 640 - len(speech))))[:50 * 640]
        write_mp4(str(folder / "person.mp4"), astronaut_frames(50, 96), fps=25.0, audio=speech, crf=18)
        avatars = _avatars(folder, count, str(folder / "person.mp4"))
        overrides = TINY + ([f"finetune.foundation={animator}"] if animator else [])
        cfg = FleetConfig(until=None if animator else "voice")
        report = run_fleet(avatars, str(folder / "fleet"), settings_for("tiny", overrides,
                                                                        load_config("tiny", overrides)), cfg,
                           runtime=runtime, show_progress=False)
    per_step = {step: row["mean_s"] for step, row in report["per_step"].items()}
    return {"avatars": count, "steps": report["steps"], "done": report["done"], "failed": report["failed"],
            "failures": report["failures"], "seconds": report["seconds"],
            "avatars_per_hour": round(3600 * report["done"] / report["seconds"], 1) if report["done"] else 0.0,
            "mean_step_s": per_step, "bottleneck_step": max(per_step, key=lambda s: per_step[s] or 0.0),
            "settings": "tiny preset + " + " ".join(TINY)}


def _in_subprocess(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--until", default="voice", help="the no-op fleets' last step (see the docstring: the "
                                                         "0-CPU finetune step is measured apart)")
    parser.add_argument("--real", type=int, default=3, help="avatars in the real tiny fleet (0: none)")
    parser.add_argument("--animator", default=None, help="a foundation animator model.pt: the real fleet runs "
                                                          "every step (without: ingest → track → voice)")
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-real", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_size is not None:
        print("RESULT " + json.dumps(one_size(args.one_size, args.until)))
        return
    if args.one_real is not None:
        print("RESULT " + json.dumps(real_fleet(args.one_real, args.animator)))
        return
    rows = []
    for count in args.sizes:
        rows.append(_in_subprocess("--one-size", str(count), "--until", args.until))
        print(json.dumps(rows[-1]), file=sys.stderr)
    every_step = _in_subprocess("--one-size", str(EVERY_STEP_AVATARS), "--until", STEPS[-1])
    print(json.dumps(every_step), file=sys.stderr)
    thousand = next((r for r in rows if r["avatars"] == 1000), None)
    result = {"bench": "fleet", "machine": describe_machine(("ray",)),
              "overhead": rows, "overhead_every_step": every_step, "target_ms_per_avatar_at_1000": 20.0,
              "meets_target": thousand["ms_per_avatar"] < 20.0 if thousand else None}
    if args.real:
        result["real_fleet"] = _in_subprocess("--one-real", str(args.real), *(
            ["--animator", args.animator] if args.animator else []))
        print(json.dumps(result["real_fleet"]), file=sys.stderr)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
