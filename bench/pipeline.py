"""Text → video benchmark → bench/results/pipeline.json.

Per stage and end to end, on one replica, each case in a fresh process (so peak RSS is the case's own):

- **stages** (a ~20 s script): TTS with the replica's voice; speech → face (log-mel → encoder → animator,
  streaming); splatting; the refiner; H.264/AAC encoding — each as video seconds per wall second
  (real-time factor), and which stage bounds the pipeline;
- **end to end**: real-time factor, time from text to the first playable piece, peak RSS, for scripts of
  10 s and 1 min (rendered), and 10 s / 1 min / 10 min through TTS → face only (the part whose state could
  grow with the script; rendering holds one chunk by construction) — peak memory must not grow with length.

The replica is `--replica` (e.g. the demo's bundle, with `--animator` for bundles without a fine-tuned one)
or, by default, the tests' tiny replica built on the spot (64² avatar). `--size` renders at that many pixels
(the avatar's camera scaled: the rasterizer's cost at that size; 256² is the CPU target).

    python bench/pipeline.py [--replica URL] [--animator URL] [--size 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
SENTENCE = ("The quick brown fox jumps over the lazy dog, and then it runs back home to tell everyone about it. "
            "Nobody believes a single word, but the story keeps getting better every time it is told. ")
"""About ten seconds of speech."""


def script(seconds: float) -> str:
    return SENTENCE * max(1, round(seconds / 10))


def _replica(args):
    import torch

    from render.pipeline import load_replica
    from render.video import scaled_camera

    torch.set_num_threads(args.threads)
    replica = load_replica(args.replica, animator=args.animator, verify_hashes=False)
    if args.size:
        camera = replica.avatar.camera
        scale = args.size / max(camera.width, camera.height)
        replica.avatar.camera = scaled_camera(camera, round(camera.width * scale), round(camera.height * scale))
    return replica


def case_stages(args) -> dict:
    """Time each stage on its own over one ~20 s script."""
    import numpy as np
    import torch

    from datasets.media import Mp4Stream
    from render.pipeline import RenderOptions, _frames, _posed, _regroup, face_stream, validate_request
    from personalize.voice import speak

    replica = _replica(args)
    text = script(20)
    voice = validate_request(replica, text, None, RenderOptions())
    timings = {}
    started = time.perf_counter()
    wav = speak(text, voice, replica.shift)
    timings["tts"] = time.perf_counter() - started
    wav = np.pad(wav, (0, -len(wav) % 640))
    video_s = len(wav) / 16000
    with torch.no_grad():
        started = time.perf_counter()
        pieces = torch.as_tensor(wav)[None].split(25 * 640, dim=1)
        chunks = list(_regroup(face_stream(replica, pieces), 25, 25))
        timings["speech_to_face"] = time.perf_counter() - started
        options = RenderOptions(refine=False)
        started = time.perf_counter()
        splats, start = [], 0
        for part in chunks:
            splats.append(_frames(replica, _posed(replica, part, start, options), None, options)[0])
            start += part["expr"].shape[0]
        timings["splat"] = time.perf_counter() - started
        if replica.avatar.refiner is not None:
            from render.refine import refine_frames

            started, previous = time.perf_counter(), None
            for frames in splats:
                refined = refine_frames(replica.avatar.refiner, frames, previous)
                previous = refined[-1]
            timings["refine"] = time.perf_counter() - started
    frames = [(f * 255).round().to(torch.uint8).numpy() for f in splats]
    stream = Mp4Stream(frames[0].shape[2], frames[0].shape[1])
    started = time.perf_counter()
    offset = 0
    for chunk in frames:
        stream.write(chunk, wav[offset:offset + len(chunk) * 640])
        offset += len(chunk) * 640
    stream.close()
    timings["encode"] = time.perf_counter() - started
    out = {name: {"wall_s": round(t, 3), "realtime_factor": round(video_s / t, 2)} for name, t in timings.items()}
    bound = min(out, key=lambda name: out[name]["realtime_factor"])
    return {"video_s": round(video_s, 2), "size": [int(frames[0].shape[2]), int(frames[0].shape[1])],
            "stages": out, "bounded_by": bound,
            "pipeline_realtime_factor_if_serial": round(video_s / sum(timings.values()), 2)}


def case_end_to_end(args) -> dict:
    """One whole render of a script of `args.seconds` (to a temp mp4), or TTS → face only with --face-only."""
    import numpy as np
    import torch

    from render.pipeline import RenderOptions, face_stream, render_to_url, validate_request
    from personalize.voice import speak
    from foundation.tts import split_sentences

    replica = _replica(args)
    text = script(args.seconds)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.face_only:
        voice = validate_request(replica, text, None, RenderOptions())
        started, frames = time.perf_counter(), 0

        def speech():
            for sentence in split_sentences(text):
                wav = speak(sentence, voice, replica.shift)
                yield torch.as_tensor(np.pad(wav, (0, -len(wav) % 640)))[None]

        with torch.no_grad():
            for part in face_stream(replica, speech()):
                frames += part["expr"].shape[1]
        wall = time.perf_counter() - started
        report = {"frames": frames, "video_s": round(frames / 25, 2), "wall_s": round(wall, 2),
                  "realtime_factor": round(frames / 25 / wall, 2)}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = render_to_url(str(Path(tmp) / "out.mp4"), replica, text=text)
        report.pop("url")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**report, "peak_rss_MiB": round(peak), "rss_before_render_MiB": round(base)}


def run_case(kind: str, args, **extra) -> dict:
    cmd = [sys.executable, __file__, "--case", kind, "--replica", args.replica, "--threads", str(args.threads)]
    for key, value in {"animator": args.animator, "size": args.size, **extra}.items():
        if value is True:
            cmd.append(f"--{key.replace('_', '-')}")
        elif value not in (None, False):
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{kind} {extra} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replica", default=None, help="Replica bundle (default: build the tests' tiny one).")
    parser.add_argument("--animator", default=None, help="Animator export for bundles without one.")
    parser.add_argument("--size", type=int, default=None, help="Render at this longer side (pixels).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--face-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--long-minutes", type=float, default=10, help="Longest TTS → face script (minutes).")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case_stages(args) if args.case == "stages" else case_end_to_end(args)))
        return
    from bench.machine import describe_machine

    if args.replica is None:
        from tests.render.replica import cached_replica

        cache = Path(__file__).resolve().parents[1] / ".cache" / "bench"
        cache.mkdir(parents=True, exist_ok=True)
        args.replica = cached_replica(cache)
    results = {"machine": describe_machine(("av", "ray")), "replica": args.replica, "threads": args.threads,
               "size": args.size, "stages": run_case("stages", args)}
    print(json.dumps(results["stages"], indent=1))
    results["end_to_end"] = {f"{s:g}s": run_case("e2e", args, seconds=s) for s in (10, 60)}
    print(json.dumps(results["end_to_end"], indent=1))
    results["tts_to_face"] = {f"{s:g}s": run_case("e2e", args, seconds=s, face_only=True)
                              for s in (10, 60, args.long_minutes * 60)}
    print(json.dumps(results["tts_to_face"], indent=1))
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"→ {RESULTS}")


if __name__ == "__main__":
    main()
