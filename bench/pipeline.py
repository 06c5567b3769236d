"""Text → video benchmark → bench/results/pipeline.json.

Per stage and end to end, on one replica, each case in a fresh process (so peak RSS is the case's own):

- **stages** (a ~20 s script): TTS with the replica's voice; speech → face (log-mel → encoder → animator,
  streaming); splatting; the refiner; H.264/AAC encoding — each as video seconds per wall second
  (real-time factor), and which stage bounds the pipeline;
- **end to end**: real-time factor, time from text to the first playable piece, peak RSS, for scripts of
  10 s and 1 min (rendered), and 10 s / 1 min / 10 min through TTS → face only (the part whose state could
  grow with the script; rendering holds one chunk by construction) — peak memory must not grow with length.

- **quality** (with `--truth-video`, the synthetic person video the replica was created from): on the video's
  held-out last 15%, LVE (mm, true head pose) and PSNR of frames rendered with the predicted mouth and the tracked
  head pose, for
  the replica's animator, the untuned foundation animator (`--foundation`), energy→jaw and the mean face.

The replica is `--replica` (e.g. the demo's bundle, with `--animator` for bundles without a fine-tuned one)
or, by default, the tests' tiny replica built on the spot (64² avatar). `--size` renders at that many pixels
(the avatar's camera scaled: the rasterizer's cost at that size; 256² is the CPU target).

    python bench/pipeline.py [--replica URL] [--animator URL] [--size 256] [--threads 2]
    python bench/pipeline.py --parts quality --replica runs/demo/replicas/person \
        --truth-video runs/demo/person/person.mp4 --foundation runs/demo/animator/model.pt
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


def case_quality(args) -> dict:
    """Lip sync and frames against the truth on the held-out tail of a synthetic person's video (audio the
    replica's fine-tuning never saw): the replica's animator, the untuned foundation one (`--foundation`), the
    energy→jaw and mean-face baselines. Mouth motion is compared with the true head pose put back (LVE, mm);
    frames are rendered with the predicted mouth and the tracked pose and compared with the video (PSNR, dB)."""
    import numpy as np
    import torch

    from datasets.media import read_audio, read_video
    from foundation.evaluation.metrics import EnergyJawBaseline, MeanFaceBaseline, lip_vertex_error
    from datasets import storage
    from foundation.head import FaceParams, load_params
    from foundation.models import load_animator
    from personalize.bundle import read_manifest
    from personalize.groundtruth import true_person
    from render.pipeline import face_stream
    from render.quality import psnr

    replica = _replica(args)
    truth = true_person(args.truth_video)
    true, n = truth.params, truth.n_frames
    wav = read_audio(args.truth_video)[: n * 640]
    wav = np.pad(wav, (0, n * 640 - len(wav)))
    tail = int(round(n * 0.85))
    keys = ("expr", "jaw", "neck", "rot", "trans")
    true_np = {k: getattr(true, k).numpy() for k in keys}

    def animated(model) -> dict[str, np.ndarray]:
        replica.model = model
        with torch.no_grad():
            parts = list(face_stream(replica, torch.as_tensor(wav)[None].split(25 * 640, dim=1)))
        return {k: torch.cat([p[k][0] for p in parts]).numpy() for k in ("expr", "jaw")}

    fits = [{k: v[:tail] for k, v in true_np.items()}]
    energy = EnergyJawBaseline().fit([wav[: tail * 640]], fits)
    candidates = {"replica": animated(replica.model)}
    if args.foundation:
        candidates["foundation (untuned)"] = animated(load_animator(args.foundation))
    for name, baseline in (("energy→jaw", energy), ("mean face", MeanFaceBaseline().fit(fits))):
        predicted = baseline.predict(wav, n)
        candidates[name] = {"expr": predicted["expr"], "jaw": predicted["jaw"]}
    rows = slice(tail, n)

    # the avatar lives in the tracked camera's world: frames are rendered with the tracked identity and pose (what
    # the avatar was trained with) and the predicted mouth; lip error is measured in the true world
    manifest = read_manifest(args.replica)
    tracked = load_params(storage.join(args.replica, manifest["artifacts"]["track/params"]["url"])).params
    crop = storage.join(args.replica, manifest["artifacts"]["ingest/crop"]["url"])  # what the avatar renders
    frames = torch.as_tensor(read_video(crop)[tail:n]) / 255.0

    def posed(mouth: dict[str, np.ndarray], pose: FaceParams) -> FaceParams:
        return FaceParams(shape=pose.shape, expr=torch.as_tensor(mouth["expr"][rows]).float(),
                          jaw=torch.as_tensor(mouth["jaw"][rows]).float(), neck=pose.neck[rows], rot=pose.rot[rows],
                          trans=pose.trans[rows])

    with torch.no_grad():
        true_verts = replica.head(FaceParams(shape=true.shape, **{k: getattr(true, k)[rows] for k in keys}))
        out = {}
        for name, mouth in candidates.items():
            verts = replica.head(posed(mouth, true))
            shown = replica.head(posed(mouth, tracked))
            rendered = torch.stack([replica.avatar.splat(v, replica.avatar.camera, replica.backend)[0] for v in shown])
            out[name] = {"lve_mm": round(1000 * lip_vertex_error(verts, true_verts, replica.head.mouth_vertex_ids), 3),
                         "psnr_db": round(psnr(rendered.clamp(0, 1), frames[: len(rendered)]), 2)}
    return {"video": args.truth_video, "heldout_frames": n - tail, "candidates": out}


def run_case(kind: str, args, **extra) -> dict:
    cmd = [sys.executable, __file__, "--case", kind, "--replica", args.replica, "--threads", str(args.threads)]
    for key, value in {"animator": args.animator, "size": args.size, "truth_video": args.truth_video,
                       "foundation": args.foundation, **extra}.items():
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
    parser.add_argument("--parts", default="speed,quality", help="Which parts to run: speed, quality (comma list).")
    parser.add_argument("--quick", action="store_true", help="Stages and a 10 s render only (the GPU session).")
    parser.add_argument("--truth-video", default=None, help="A synthetic person video (with <stem>.params.npz) the "
                                                           "replica was created from: adds the quality part.")
    parser.add_argument("--foundation", default=None, help="The untuned foundation animator, for the quality part.")
    args = parser.parse_args()
    if args.case:
        cases = {"stages": case_stages, "e2e": case_end_to_end, "quality": case_quality}
        print(json.dumps(cases[args.case](args)))
        return
    from bench.machine import describe_machine

    if args.replica is None:
        from tests.render.replica import cached_replica

        cache = Path(__file__).resolve().parents[1] / ".cache" / "bench"
        cache.mkdir(parents=True, exist_ok=True)
        args.replica = cached_replica(cache)
    parts = set(args.parts.split(","))
    # each part owns its keys: a run of some parts keeps the others' last numbers
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update({"machine": describe_machine(("av", "ray")), "threads": args.threads})
    if "quality" in parts and args.truth_video:
        results["quality"] = run_case("quality", args)
        print(json.dumps(results["quality"], indent=1))
    if "speed" in parts:
        results.update({"replica": args.replica, "size": args.size, "stages": run_case("stages", args)})
        print(json.dumps(results["stages"], indent=1))
        results["end_to_end"] = {f"{s:g}s": run_case("e2e", args, seconds=s)
                                 for s in ((10,) if args.quick else (10, 60))}
        print(json.dumps(results["end_to_end"], indent=1))
        if not args.quick:
            results["tts_to_face"] = {f"{s:g}s": run_case("e2e", args, seconds=s, face_only=True)
                                      for s in (10, 60, args.long_minutes * 60)}
            print(json.dumps(results["tts_to_face"], indent=1))
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"→ {RESULTS}")


if __name__ == "__main__":
    main()
