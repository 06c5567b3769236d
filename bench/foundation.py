"""The foundation models on real speech → bench/results/foundation.json.

Parts (`--parts`, each keeps the others' numbers already in the JSON):
- `eval`: the release's table (`foundation.evaluation.release_report`): speaker-verification EER of our audio
  encoder vs resemblyzer on the very same trials — 2 s windows of the **held-out real speakers** (never in
  training; their corpora, sources and licences are named), the same windows through a 10 dB noise and a
  telephone channel, and held-out TTS voices; the animator's LVE on held-out real-speech-driven clips and TTS
  clips vs the energy→jaw and mean-face baselines.
- `voice`: voice ranking for each held-out real speaker (their held-out speech as the "person"): the top TTS
  candidates by resemblyzer and by our encoder, the rank correlation of the two, and — where the pool has a TTS
  voice built from that very speaker (flite's awb, slt, rms, kal from CMU ARCTIC) — its rank.
- `reproduction` (with `--retrained DIR`): the shipped release against a second build of the same recipe with
  other seeds (`replica release build --out DIR --set train.seed=2 --set loader.seed=2`), both scored here on
  the same data and trials: the spread of each headline number over two seeds.
- `ablation`: what each speaker-objective term buys: short audio-encoder runs on the recipe's data with one term
  (or the augmentation) removed, each scored on the held-out real speakers.
- `sweep` (with `--sweep NAME:ARM=KEY=VALUE,…;ARM=…`): short audio-encoder runs of the recipe, each arm's overrides
  trained with every seed of `--sweep-seeds`, scored as `ablation`'s runs are, kept under `sweeps.NAME` with each
  arm's mean over the seeds (one seed's run is no verdict at a few hundred steps).
- `viseme`: what the animator's viseme term (`animator_loss.viseme`) buys: the recipe's animator step (same data,
  steps, learning rate, seed, and the installed release's audio encoder as its start) at each weight of
  `--viseme-weights`, scored on the held-out real-speech and TTS clips beside the installed animator (one entry
  per held-out real set, named by its speaker count).

Run after `replica release build` (its run folder holds the data):
    .venv/bin/python bench/foundation.py [--run runs/release] [--release foundation/release] [--parts eval,voice]
    .venv/bin/python bench/foundation.py --run runs/release_seed2 --parts reproduction \
        --retrained runs/release_seed2/release
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Run as a script, this folder would come first on sys.path; the repository root must instead.
sys.path = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from datasets import storage  # noqa: E402
from datasets.loader import iter_samples  # noqa: E402
from datasets.shards import read_manifest  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "foundation.json"
SIBLINGS = {"arctic-awb": "flite:awb", "arctic-slt": "flite:slt", "arctic-rms": "flite:rms", "arctic-kal": "flite:kal"}
"""Real CMU ARCTIC speakers whose recordings flite's voice of the same name was built from."""
ABLATIONS = {
    "full": [],
    "no_distill": ["audio_loss.distill_weight=0"],
    "no_aam": ["audio_loss.speaker_weight=0"],
    "no_cpc": ["audio_loss.cpc_weight=0"],
    "no_augment": ["augment.enabled=false"],
}


def data_urls(run: str) -> dict[str, str]:
    names = ("tts_train", "tts_heldout", "real_train", "real_heldout", "faces_train", "faces_heldout", "audio_mix",
             "animator_mix")
    urls = {n: storage.join(run, "data", n) for n in names}
    missing = [u for u in urls.values() if not storage.exists(storage.join(u, "manifest.json"))]
    if missing:
        print(f"skipped: {missing[0]} is missing — `make release` (replica release build --out {run}) builds it")
        sys.exit(0)
    return urls


def real_set(data: dict[str, str]) -> dict:
    """Who the held-out real speakers are, where their speech comes from and under which licence."""
    rows: dict[str, dict] = {}
    for sample in iter_samples(data["real_heldout"]):
        row = rows.setdefault(str(sample.meta["speaker"]), {"seconds": 0.0, "clips": 0, "sources": set(),
                                                              "licenses": set()})
        row["seconds"] += sample.duration_s
        row["clips"] += 1
        row["sources"].add(str(sample.meta.get("source")))
        row["licenses"].add(str(sample.meta.get("license")))
    return {k: {**v, "seconds": round(v["seconds"], 1), "sources": sorted(v["sources"]),
                "licenses": sorted(v["licenses"])} for k, v in sorted(rows.items())}


def part_eval(release: dict[str, str], data: dict[str, str]) -> dict:
    from foundation.evaluation import release_report
    from foundation.evaluation.runner import standard_degradations

    started = time.perf_counter()
    report = release_report(release["audio"], release["animator"], data, standard_degradations())
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["real_heldout_speakers"] = real_set(data)
    return report


def part_voice(release: dict[str, str], data: dict[str, str]) -> dict:
    from personalize.voice import VoiceConfig, choose_voice

    per: dict[str, list[np.ndarray]] = {}
    for sample in iter_samples(data["real_heldout"]):
        per.setdefault(str(sample.meta["speaker"]), []).append(sample.wav)
    cfg = VoiceConfig(candidates=["flite:*", "piper:*", "espeak:en-us", "espeak:en-gb", "espeak:en-us+f2",
                                  "espeak:en-us+m3", "espeak:en-gb+f3", "espeak:en-gb+m1"], sentences=3)
    rows = []
    for speaker, wavs in sorted(per.items()):
        started = time.perf_counter()
        choice = choose_voice(np.concatenate(wavs), cfg, encoder_url=release["audio"])
        top = {enc: [c.id for c in sorted(choice.ranking, key=lambda c: -c.scores[enc])[:3]]
               for enc in ("resemblyzer", "foundation")}
        row = {"speaker": speaker, "speech_s": round(sum(len(w) for w in wavs) / 16000, 1),
               "candidates": len(choice.ranking), "top3": top, "agreement_spearman": choice.agreement,
               "seconds": round(time.perf_counter() - started, 1)}
        if speaker in SIBLINGS:
            row["sibling_voice"] = SIBLINGS[speaker]
            row["sibling_rank"] = {enc: choice.rank_of(SIBLINGS[speaker], enc) for enc in ("resemblyzer", "foundation")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    agreement = [r["agreement_spearman"] for r in rows if r["agreement_spearman"] is not None]
    return {"rows": rows, "mean_agreement_spearman": round(float(np.mean(agreement)), 3) if agreement else None,
            "candidate_patterns": cfg.candidates}


REPRODUCED = [("audio", split, "eer") for split in
              ("real_heldout", "real_heldout/noise_10db", "real_heldout/telephone", "tts_heldout")] + \
             [("animator", split, metric) for split in ("real_heldout", "tts_heldout")
              for metric in ("lve_mm/animator", "lve_ratio_energy_jaw")]
"""(model, held-out set, metric) of the release's table whose spread over seeds is reported."""


def part_reproduction(release: dict[str, str], retrained_folder: str, data: dict[str, str]) -> dict:
    from foundation.evaluation import release_report
    from foundation.evaluation.runner import standard_degradations
    from foundation.models import RELEASE_DIR, release_info, release_url

    builds = {"shipped": release, "retrained": {kind: release_url(kind, retrained_folder)
                                                for kind in ("audio", "animator")}}
    seeds = {}
    for name, folder in (("shipped", RELEASE_DIR), ("retrained", retrained_folder)):
        info = release_info(folder)
        seeds[name] = {"train.seed": info["config"]["train"]["seed"], "loader.seed": info["config"]["loader"]["seed"],
                       "release_version": info["version"]}
    reports = {}
    for name, models in builds.items():
        started = time.perf_counter()
        reports[name] = release_report(models["audio"], models["animator"], data, standard_degradations())
        print(f"{name}: evaluated in {time.perf_counter() - started:.0f}s", flush=True)
    rows = {}
    for model, split, metric in REPRODUCED:
        shipped, retrained = (float(reports[name][model][split][metric]) for name in builds)
        rows[f"{model} {split} {metric}"] = {"shipped": round(shipped, 4), "retrained": round(retrained, 4),
                                             "difference": round(retrained - shipped, 4)}
        print(f"{model:8s} {split:26s} {metric:22s} {shipped:7.3f} {retrained:7.3f}", flush=True)
    resemblyzer = {name: reports[name]["audio"]["real_heldout"]["eer_resemblyzer"] for name in builds}
    return {"seeds": seeds, "retrained_folder": retrained_folder, "rows": rows,
            "same_trials_check": {"eer_resemblyzer_real_heldout": resemblyzer}}


def audio_run(run: str, data: dict[str, str], folder: str, overrides: list[str], steps: int, config: str) -> dict:
    """One short audio-encoder run of the recipe with `overrides` (kept under `<run>/<folder>`; a finished one is
    re-scored, not retrained), scored on the held-out real speakers (clean and both degradations) and TTS voices."""
    from cluster.pretrain import pretrain
    from foundation.evaluation import evaluate_audio
    from foundation.evaluation.runner import RELEASE_WINDOW_S, standard_degradations
    from launch.config import load_config

    cfg = load_config(config, overrides + [f"train.steps={steps}", f"train.eval_every={steps}",
                                           f"train.checkpoint_every={steps}"])
    out = storage.join(run, folder)
    if not storage.exists(storage.join(out, "model.pt")):
        pretrain("audio", cfg, data["audio_mix"], out)
    model = storage.join(out, "model.pt")
    summary = storage.read_json(storage.join(out, "train_summary.json"))
    real = evaluate_audio(model, data["real_heldout"], window_s=RELEASE_WINDOW_S)
    tts = evaluate_audio(model, data["tts_heldout"], window_s=RELEASE_WINDOW_S)
    row = {"overrides": overrides, "steps": steps, "train_s": summary["seconds"],
           "eer_real_heldout": real["eer"], "eer_real_heldout_ci95": real["eer_ci95"],
           "eer_resemblyzer_real_heldout": real["eer_resemblyzer"],
           "eer_tts_heldout": tts["eer"], "eer_tts_heldout_ci95": tts["eer_ci95"]}
    for name, degrade in standard_degradations().items():
        row[f"eer_real_heldout/{name}"] = evaluate_audio(model, data["real_heldout"], window_s=RELEASE_WINDOW_S,
                                                         degrade=degrade)["eer"]
    return row


def part_ablation(run: str, data: dict[str, str], steps: int, config: str) -> dict:
    rows = {}
    for name, overrides in ABLATIONS.items():
        rows[name] = audio_run(run, data, f"ablation/{name}", overrides, steps, config)
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def part_sweep(run: str, data: dict[str, str], steps: int, config: str, arms: dict[str, list[str]],
               seeds: list[int]) -> dict:
    """Each arm (a list of overrides) trained with each seed (`train.seed` and `loader.seed`): at a few hundred
    steps the seed moves the real-speaker EER by several points, so an arm is read by its mean over seeds."""
    rows: dict[str, dict] = {}
    for arm, overrides in arms.items():
        per_seed = {}
        for seed in seeds:
            per_seed[str(seed)] = audio_run(run, data, f"sweep/s{steps}/{arm}_seed{seed}",
                                            overrides + [f"train.seed={seed}", f"loader.seed={seed}"], steps, config)
            print(arm, seed, json.dumps(per_seed[str(seed)]), flush=True)
        keys = [k for k in per_seed[str(seeds[0])] if k.startswith("eer_") and not k.endswith("ci95")]
        rows[arm] = {"overrides": overrides, "seeds": per_seed,
                     "mean": {k: round(float(np.mean([r[k] for r in per_seed.values()])), 4) for k in keys}}
    return {"steps": steps, "seeds": seeds, "arms": rows}


def part_viseme(run: str, release: dict[str, str], data: dict[str, str], weights: list[float], config: str) -> dict:
    from cluster.pretrain import pretrain
    from foundation.evaluation import evaluate_animator
    from launch.config import load_config

    def scores(url: str) -> dict:
        out = {}
        for split, heldout in (("real_heldout", "faces_heldout"), ("tts_heldout", "tts_heldout")):
            row = evaluate_animator(url, data[heldout], data["animator_mix"])
            out[split] = {"lve_mm": row["lve_mm/animator"], "lve_ratio_energy_jaw":
                          row["lve_mm/energy_jaw"] / max(row["lve_mm/animator"], 1e-9),
                          "lve_mm_phones_known": row.get("lve_mm/phones_known")}
        return out

    rows = {"installed": {"viseme": 0.0, **scores(release["animator"])}}
    for weight in weights:
        base = load_config(config)
        cfg = load_config(config, [f"animator_loss.viseme={weight}", f"train.steps={base.release.animator_steps or base.train.steps}",
                                   f"train.lr={base.release.animator_lr or base.train.lr}"])
        out = storage.join(run, "viseme", f"w{weight:g}")
        if not storage.exists(storage.join(out, "model.pt")):
            pretrain("animator", cfg, data["animator_mix"], out, init_from=release["audio"])
        summary = storage.read_json(storage.join(out, "train_summary.json"))
        rows[f"viseme={weight:g}"] = {"viseme": weight, "train_s": summary["seconds"],
                                      "final_viseme_acc": summary["final_metrics"].get("viseme_acc"),
                                      **scores(storage.join(out, "model.pt"))}
        print(json.dumps(rows[f"viseme={weight:g}"]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/release", help="the `replica release build` folder (its data/)")
    parser.add_argument("--release", default=None, help="a release folder (default: the installed one)")
    parser.add_argument("--parts", default="eval,voice",
                        help="comma-separated: eval, voice, reproduction, ablation, sweep, viseme")
    parser.add_argument("--ablation-steps", type=int, default=600)
    parser.add_argument("--viseme-weights", default="0.03,0.3", help="for --parts viseme: comma-separated weights")
    parser.add_argument("--retrained", default=None, help="for --parts reproduction: a second release build's "
                                                           "release/ folder (same recipe, other seeds)")
    parser.add_argument("--sweep", default=None, help="for --parts sweep: NAME:ARM=KEY=VALUE,KEY=VALUE;ARM=… "
                                                       "(an arm with nothing after = is the recipe as it is)")
    parser.add_argument("--sweep-seeds", default="0,2", help="for --parts sweep: comma-separated seeds")
    parser.add_argument("--sweep-steps", type=int, default=600)
    parser.add_argument("--config", default="default")
    args = parser.parse_args()
    from foundation.models import RELEASE_DIR, release_info, release_url

    folder = args.release or RELEASE_DIR
    info = release_info(folder)
    release = {kind: release_url(kind, folder) for kind in ("audio", "animator")}
    data = data_urls(args.run)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update({"release": {"version": info["version"], "recipe": info["recipe"], "files": info["files"]},
                    "data": {k: {"url": v, "samples": read_manifest(v).num_samples} for k, v in data.items()},
                    "machine": describe_machine(("resemblyzer",))})
    for part in args.parts.split(","):
        if part == "eval":
            results["eval"] = part_eval(release, data)
        elif part == "voice":
            results["voice"] = part_voice(release, data)
        elif part == "reproduction":
            if not args.retrained:
                sys.exit("--parts reproduction needs --retrained DIR (a second build's release/ folder)")
            results["reproduction"] = part_reproduction(release, args.retrained, data)
        elif part == "ablation":
            results["ablation"] = part_ablation(args.run, data, args.ablation_steps, args.config)
        elif part == "sweep":
            if not args.sweep or ":" not in args.sweep:
                sys.exit("--parts sweep needs --sweep NAME:ARM=KEY=VALUE,…;ARM=…")
            name, spec = args.sweep.split(":", 1)
            arms = {arm: [o for o in overrides.split(",") if o]
                    for arm, overrides in (item.split("=", 1) for item in spec.split(";"))}
            seeds = [int(x) for x in args.sweep_seeds.split(",")]
            sweep = part_sweep(args.run, data, args.sweep_steps, args.config, arms, seeds)
            results.setdefault("sweeps", {})[name] = {**sweep, "machine": describe_machine(("resemblyzer",))}
        elif part == "viseme":
            weights = [float(w) for w in args.viseme_weights.split(",")]
            speakers = len(read_manifest(data["real_heldout"]).info["speakers"])  # one entry per held-out set
            results["viseme"] = {**results.get("viseme", {}),
                                 f"real_heldout_{speakers}_speakers": part_viseme(args.run, release, data, weights,
                                                                                  args.config)}
        else:
            sys.exit(f"--parts {part}: expected eval, voice, reproduction, ablation, sweep or viseme")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"→ {RESULTS}")


if __name__ == "__main__":
    main()
