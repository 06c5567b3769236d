"""Where tracking's error comes from → bench/results/tracking.json.

For each synthetic person (`replica data synth-person --seed S --size N`: the tiny config's world at N² pixels,
cut to a 256² crop by `personalize.ingest.ingest_person`), the landmark fit (`personalize.tracking.fit_landmarks`,
default schedule) runs twice on the same frames:

- on **MediaPipe's** landmarks, as `replica create` does;
- on the **exact** landmarks (the true mesh projected, mapped into the crop): the floor the head model, the
  free focal length and the optimiser leave.

Recorded per person and run: the face's vertex error as % of the inter-ocular distance (similarity-aligned,
the headline number, and rigidly aligned), split into the part the fitted identity causes (true expression)
and the part the fitted expression causes (true identity); the correlation of fitted and true identity
coefficients; MediaPipe's own distance from the exact landmarks, and how much of it is one constant offset per
landmark over the whole video (a bias that follows the person, not noise that averages out).

    python bench/tracking.py [--seeds 11 12] [--seconds 20] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and would shadow the packages.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from foundation.head import FaceParams  # noqa: E402
from foundation.world import synth_person  # noqa: E402
from launch.config import load_config, with_options  # noqa: E402
from personalize.groundtruth import (LEFT_EYE_OUTER, RIGHT_EYE_OUTER, expression_correlation,  # noqa: E402
                                     face_error_iod, true_landmarks_in_crop, true_person)
from personalize.ingest import PersonIngestConfig, ingest_person  # noqa: E402
from personalize.tracking import TrackingConfig, fit_landmarks  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "tracking.json"
CROP = 256


def _errors(fitted: FaceParams, truth: FaceParams) -> dict:
    def mixed(shape_from: FaceParams, motion_from: FaceParams) -> FaceParams:
        return FaceParams(shape_from.shape, motion_from.expr, motion_from.jaw, motion_from.neck, motion_from.rot,
                          motion_from.trans)

    fit_shape, true_shape = fitted.shape.numpy()[1:], truth.shape.numpy()[1:]  # component 0 is global scale
    return {"vertex_iod_pct": round(face_error_iod(fitted, truth), 3),
            "vertex_rigid_iod_pct": round(face_error_iod(fitted, truth, scale=False), 3),
            "identity_part_iod_pct": round(face_error_iod(mixed(fitted, truth), truth), 3),
            "expression_part_iod_pct": round(face_error_iod(mixed(truth, fitted), truth), 3),
            "identity_coefficient_corr": round(float(np.corrcoef(fit_shape, true_shape)[0, 1]), 3),
            "expression_corr": round(expression_correlation(fitted, truth), 3)}


def bench_person(seed: int, seconds: float, size: int, folder: str) -> dict:
    started = time.perf_counter()
    world = with_options(load_config("tiny").synth, "synth", seed=seed, size=size)  # as `replica data synth-person`
    video = synth_person(seconds, f"{folder}/person-{seed}.mp4", world)["video"]
    person = ingest_person(video, CROP, PersonIngestConfig(min_seconds=min(5.0, seconds / 2)))
    prepared_s = time.perf_counter() - started
    truth = true_person(video)
    n = min(len(person.lmk), truth.n_frames)
    true_params = FaceParams(truth.params.shape, *(getattr(truth.params, k)[:n]
                                                   for k in ("expr", "jaw", "neck", "rot", "trans")))
    exact = true_landmarks_in_crop(truth, person.boxes[:n])
    offset = (person.lmk[:n, :, :2] - exact) * CROP
    iod_px = float(np.linalg.norm(exact[:, LEFT_EYE_OUTER] - exact[:, RIGHT_EYE_OUTER], axis=-1).mean() * CROP)
    out = {"seed": seed, "frames": n, "identity": str(truth.extras.get("identity")),
           "iod_px": round(iod_px, 1), "prepare_seconds": round(prepared_s, 1),
           "mediapipe_vs_exact_px": round(float(np.linalg.norm(offset, axis=-1).mean()), 3),
           "mediapipe_constant_offset_px": round(float(np.linalg.norm(offset.mean(0), axis=-1).mean()), 3),
           "mediapipe_varying_px": round(float(np.linalg.norm(offset - offset.mean(0), axis=-1).mean()), 3)}
    for name, lmk in (("mediapipe", person.lmk[:n]), ("exact", np.concatenate([exact, person.lmk[:n, :, 2:]], -1))):
        started = time.perf_counter()
        params, camera, residual = fit_landmarks(lmk, person.blendshapes[:n], person.found[:n], CROP, CROP,
                                                 TrackingConfig(photometric_iterations=0))
        out[name] = {**_errors(params, true_params), "landmark_px": round(float(residual.mean()), 3),
                     "focal_px": round(float(camera.K[0, 0]), 1), "seconds": round(time.perf_counter() - started, 1)}
    out["focal_true_px"] = round(float(truth.camera.K[0, 0]) * CROP / float(person.boxes[:n, 2].mean()), 1)
    mean_face = FaceParams(truth.params.shape * 0, *(getattr(true_params, k)
                                                     for k in ("expr", "jaw", "neck", "rot", "trans")))
    out["mean_identity_iod_pct"] = round(face_error_iod(mean_face, true_params), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        persons = []
        for seed in args.seeds:
            persons.append(bench_person(seed, args.seconds, args.size, folder))
            print(json.dumps(persons[-1]), flush=True)
    keys = ("vertex_iod_pct", "vertex_rigid_iod_pct", "identity_part_iod_pct", "expression_part_iod_pct",
            "identity_coefficient_corr", "expression_corr")
    summary = {name: {k: round(float(np.median([p[name][k] for p in persons])), 3) for k in keys}
               for name in ("mediapipe", "exact")}
    summary["mean_identity_iod_pct"] = round(float(np.median([p["mean_identity_iod_pct"] for p in persons])), 3)
    result = {"what": __doc__.split("\n\n")[0], "crop": CROP, "source_size": args.size, "seconds": args.seconds,
              "tracking": "TrackingConfig() landmark stage", "median": summary, "persons": persons,
              "machine": describe_machine(("mediapipe", "torch"))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
