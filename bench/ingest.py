"""Ingesting a long phone-sized video: wall time and peak memory → bench/results/ingest.json.

A real face (the Pexels clip `datasets.corpora.face_video("pexels")`, 640×360) is scaled up to 1920×1080 and
played forwards and backwards to `--seconds` with real speech muxed in (the Montreal Forced Aligner author's
recordings, looped), written chunk by chunk so this script never holds the video either. Then
`personalize.ingest.ingest_person` runs on it in a fresh process at the cluster preset's crop size (256²), once
for each `--max-seconds` given; each process reports its own peak resident memory as the kernel kept it
(`VmHWM`: no sampling can miss a spike; unlike `ru_maxrss` it does not carry the forking parent's size over).

    python bench/ingest.py [--seconds 120] [--max-seconds 300 60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and would shadow the packages.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"
WIDTH, HEIGHT, CROP, FPS, RATE = 1920, 1080, 256, 25, 16000

_CHILD = """
import json, sys, time
from personalize.ingest import PersonIngestConfig, ingest_person
started = time.perf_counter()
person = ingest_person(sys.argv[1], int(sys.argv[2]), PersonIngestConfig(max_seconds=float(sys.argv[3]),
                                                                         min_seconds=1.0))
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "report": person.report,
                  "peak_kib": int(hwm.split()[1])}))
"""


def long_video(path: str, seconds: float) -> dict:
    """The Pexels clip at 1920×1080, ping-ponged to `seconds`, with real speech; written chunk by chunk."""
    import torch

    from bench.phones import recordings
    from datasets.corpora import FACE_VIDEOS, CorporaConfig, face_video
    from datasets.media import Mp4Stream, read_audio, read_video

    corpora = CorporaConfig()
    clip = read_video(face_video("pexels", corpora.cache_dir), fps=FPS)
    wav = np.concatenate([read_audio(p, RATE) for rec, p, _ in recordings(corpora) if rec.startswith("mfa-author:")])
    n = int(round(seconds * FPS))
    order = np.concatenate([np.arange(len(clip)) if i % 2 == 0 else np.arange(len(clip))[::-1]
                            for i in range(-(-n // len(clip)))])[:n]
    speech = np.resize(wav, n * RATE // FPS)  # looped
    stream = Mp4Stream(WIDTH, HEIGHT, fps=FPS, crf=23)
    with open(path, "wb") as f:
        for start in range(0, n, FPS):
            picks = order[start:start + FPS]
            big = torch.nn.functional.interpolate(torch.as_tensor(clip[picks]).permute(0, 3, 1, 2).float(),
                                                  size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)
            frames = big.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()
            f.write(stream.write(frames, speech[start * RATE // FPS:(start + len(picks)) * RATE // FPS]))
        f.write(stream.close())
    return {"seconds": n / FPS, "size": [WIDTH, HEIGHT], "face": FACE_VIDEOS["pexels"].description,
            "face_license": FACE_VIDEOS["pexels"].license, "file_MiB": round(Path(path).stat().st_size / 2**20, 1)}


def ingest_once(path: str, max_seconds: float) -> dict:
    """`ingest_person` in a fresh process: its wall time, report and peak resident memory."""
    done = subprocess.run([sys.executable, "-c", _CHILD, path, str(CROP), str(max_seconds)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode:
        raise SystemExit(f"ingest failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    report = out["report"]
    return {"max_seconds": max_seconds, "seconds": out["seconds"], "used_s": report["used_s"],
            "left_out_s": report["left_out_s"], "frames": report["frames"],
            "frames_per_s": round(report["frames"] / out["seconds"], 1),
            "peak_rss_MiB": round(out["peak_kib"] / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--max-seconds", type=float, nargs="+", default=[300.0, 60.0])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        video = long_video(f"{folder}/long.mp4", args.seconds)
        video["prepare_seconds"] = round(time.perf_counter() - started, 1)
        runs = [ingest_once(f"{folder}/long.mp4", cap) for cap in args.max_seconds]
    result = {"video": video, "crop": CROP, "track_size": 512, "runs": runs,
              "note": "peak_rss_MiB: the ingest process's own peak resident memory (VmHWM)",
              "machine": describe_machine(("mediapipe", "av", "numpy"))}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
