"""What tracking and fine-tuning each cost the mouth, against the truth → bench/results/finetune.json.

`replica create`'s fine-tune step learns the person's *tracked* mouth; on a synthetic person its held-out LVE
against the tracked parameters falls while the one against the true parameters rises (`bench/create.py`). Is
that the tracker's error being learned, or fine-tuning itself? A synthetic person (`replica data synth-person
--seed S --seconds N --size 512`, cut to a 256² crop like `bench/tracking.py`) is tracked twice by the landmark
stage: from **MediaPipe's** landmarks, as `replica create` does, and from the **exact** ones (the true mesh
projected: the tracker the head model and optimiser would be with perfect landmarks). On each, the default
foundation animator is fine-tuned with a few fixed trial settings (`personalize.finetune.train_trial`, the
trial loop `replica create`'s Tune search runs, without Tune: the settings are fixed so both trackers get the
same ones), and the held-out tail (last 15 %) is scored:

- `lve_mm`: LVE against the true parameters (the prediction's expression and jaw on the true identity and pose);
- `centred_lve_mm`: the same with each side's own mean lip shape over the tail removed — the mouth's motion
  alone (a tracker's constant offset, e.g. MediaPipe reading closed lips as slightly open, drops out);
- `vs_tracked_lve_mm`: LVE against the tracked parameters (what fine-tuning optimises and Tune ranks on);

for the tracked parameters themselves, the foundation animator (before) and each fine-tuned one (after).

    python bench/finetune.py [--seed 12] [--seconds 90] [--video person.mp4] [--append]

The recorded persons: `python bench/finetune.py` (seed 12, 90 s), then `--seed 11 --seconds 30 --append` and
`--seed 11 --append`; 2-core CPU, ~12 minutes each.
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
import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from datasets.schema import FPS  # noqa: E402
from foundation.audio.features import log_mel  # noqa: E402
from foundation.evaluation.metrics import lip_vertex_error  # noqa: E402
from foundation.head import default_head_model  # noqa: E402
from foundation.models import load_animator, save_export, speech_to_face  # noqa: E402
from foundation.world import synth_person  # noqa: E402
from launch.config import load_config, with_options  # noqa: E402
from personalize.finetune import (SAMPLES_PER_FRAME, FinetuneConfig, PersonData, Scorer,  # noqa: E402
                                  check_foundation, load_objective, predict, scored_from, train_trial)
from personalize.groundtruth import true_landmarks_in_crop, true_person  # noqa: E402
from personalize.ingest import PersonIngestConfig, ingest_person  # noqa: E402
from personalize.tracking import TrackingConfig, fit_landmarks  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "finetune.json"
CROP = 256
TRIALS = [{"lr": 1e-4, "steps": 100, "layers": "all"}, {"lr": 3e-4, "steps": 200, "layers": "all"},
          {"lr": 1e-3, "steps": 100, "layers": "heads"}]
"""Fixed trial settings from `FinetuneConfig`'s search space (its default ranges)."""


class Scores:
    """Scores a mouth (expr, jaw per frame) on the held-out span against the truth and the tracked parameters."""

    def __init__(self, truth: dict, tracked: dict, span: tuple[int, int]):
        head = default_head_model()
        self.ids, self.span = head.mouth_vertex_ids, span
        self.on_truth, self.on_tracked = (Scorer(head, truth, {"heldout": span}),
                                          Scorer(head, tracked, {"heldout": span}))

    def __call__(self, mouth: dict) -> dict:
        mouth = {k: torch.as_tensor(mouth[k], dtype=torch.float32) for k in ("expr", "jaw")}
        with torch.no_grad():
            fit, true = self.on_truth.posed(mouth, *self.span), self.on_truth.truth["heldout"]
            fit_tracked = self.on_tracked.posed(mouth, *self.span)
        return {"lve_mm": round(1000 * lip_vertex_error(fit, true, self.ids), 3),
                "centred_lve_mm": round(1000 * lip_vertex_error(fit - fit.mean(0), true - true.mean(0), self.ids), 3),
                "vs_tracked_lve_mm": round(1000 * lip_vertex_error(fit_tracked, self.on_tracked.truth["heldout"],
                                                                   self.ids), 3)}


def _mouth(out: dict, first: int, n: int) -> dict:
    """A prediction for frames [first, n) as full-length expr/jaw arrays (zeros before `first`)."""
    return {k: np.concatenate([np.zeros((first, v.shape[-1]), np.float32), v.numpy()[:n - first]]) for k, v in
            out.items() if k in ("expr", "jaw")}


def bench_tracker(name: str, lmk: np.ndarray, person, truth, wav: np.ndarray, cfg: FinetuneConfig,
                  folder: str) -> dict:
    n = len(lmk)
    started = time.perf_counter()
    params, _, residual = fit_landmarks(lmk, person.blendshapes[:n], person.found[:n], CROP, CROP,
                                        TrackingConfig(photometric_iterations=0))
    tracked = {"shape": params.shape.numpy(), **{k: getattr(params, k).numpy() for k in ("expr", "jaw", "neck",
                                                                                         "rot", "trans")}}
    true = {k: v if k == "shape" else v[:n] for k, v in truth.params.as_dict().items()}
    data = PersonData(wav, tracked, true)
    spans = data.spans(cfg)
    first = scored_from(spans)
    scores = Scores(true, tracked, spans["heldout"])
    foundation = check_foundation(cfg.foundation)
    before = predict(load_objective(foundation, "all", cfg, "cpu"), data, first)
    out = {"spans_s": {k: [round(lo / FPS, 1), round(hi / FPS, 1)] for k, (lo, hi) in spans.items()},
           "landmark_px": round(float(residual.mean()), 3), "track_seconds": round(time.perf_counter() - started, 1),
           "tracked": scores(tracked),
           "foundation": scores(_mouth(before, first, data.n_frames)), "finetuned": []}
    print(name, json.dumps({k: out[k] for k in ("tracked", "foundation")}), flush=True)
    for trial in TRIALS:
        started = time.perf_counter()
        last = {}
        train_trial(trial, data, foundation, cfg, "cpu", lambda metrics, export: last.update(export=export))
        save_export(last["export"], f"{folder}/model.pt")
        model = load_animator(f"{folder}/model.pt")
        with torch.no_grad():
            wav_tail = torch.as_tensor(wav[first * SAMPLES_PER_FRAME:data.n_frames * SAMPLES_PER_FRAME])[None]
            pred = {k: v[0] for k, v in speech_to_face(model.encoder, model.animator,
                                                         log_mel(wav_tail, model.features)).items()}
        row = {**trial, **scores(_mouth(pred, first, data.n_frames)),
               "seconds": round(time.perf_counter() - started, 1)}
        out["finetuned"].append(row)
        print(name, json.dumps(row), flush=True)
    return out


def bench_person(video: str, seed: int, size: int, cfg: FinetuneConfig, folder: str) -> dict:
    person = ingest_person(video, CROP, PersonIngestConfig(min_seconds=5.0))
    truth = true_person(video)
    n = min(len(person.lmk), truth.n_frames, len(person.audio) // SAMPLES_PER_FRAME)
    exact = np.concatenate([true_landmarks_in_crop(truth, person.boxes[:n]), person.lmk[:n, :, 2:]], -1)
    out = {"seed": seed, "size": size, "crop": CROP, "frames": n, "seconds": round(n / FPS, 1),
           "voice": str(truth.extras.get("voice"))}
    for name, lmk in (("mediapipe", person.lmk[:n]), ("exact", exact)):
        out[name] = bench_tracker(name, lmk, person, truth, person.audio, cfg, folder)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--video", help="an existing `replica data synth-person` video (its params beside it)")
    parser.add_argument("--append", action="store_true", help="add this person to --out's persons")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    cfg = FinetuneConfig()
    with tempfile.TemporaryDirectory() as folder:
        video = args.video
        if video is None:
            world = with_options(load_config("tiny").synth, "synth", seed=args.seed, size=args.size)
            video = synth_person(args.seconds, f"{folder}/person.mp4", world)["video"]
        person = bench_person(video, args.seed, args.size, cfg, folder)
    out = Path(args.out)
    persons = json.loads(out.read_text())["persons"] if args.append and out.exists() else []
    result = {"what": __doc__.split("\n\n")[0], "trials": TRIALS,
              "finetune": {k: v for k, v in cfg.model_dump().items()
                           if k in ("heldout_fraction", "validation_fraction", "window_s", "batch_size")},
              "persons": [p for p in persons if (p["seed"], p["frames"]) != (person["seed"], person["frames"])]
              + [person],
              "machine": describe_machine(("torch",))}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
