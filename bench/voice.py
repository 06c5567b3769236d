"""Voice choice on synthetic persons → bench/results/voice.json.

Each synthetic person speaks a ~60 s script (`foundation.world.sentences`) in a different pool voice, drawn
without replacement from the default candidates; `personalize.voice.choose_voice` ranks every candidate against
that speech. Reported: the rank of the true voice among the candidate voices by resemblyzer similarity (issue 10's
target: first for ≥ 9 of 10 persons), which candidate won, the fitted prosody, and seconds per person.
With `--encoder URL` (a foundation audio `model.pt`) the foundation encoder's rank and the encoders' agreement too.
Torch runs on 1 thread, as in a creation step. Run: .venv/bin/python bench/voice.py [--persons 10] [--encoder runs/.../model.pt] [--candidates PATTERN ...]
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
import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from foundation.tts import synthesize  # noqa: E402
from foundation.world.sentences import make_script  # noqa: E402
from personalize.voice import VoiceConfig, candidate_voices, choose_voice  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "voice.json"
SCRIPT_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=10)
    parser.add_argument("--encoder", default=None, help="a foundation audio model.pt to rank with as well")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", nargs="+", default=None, help="voice patterns instead of the defaults")
    args = parser.parse_args()
    # as in a `replica create` step (a Ray task with 1 CPU): resemblyzer's LSTM slows ~10x when its two
    # threads share the cores with other work
    torch.set_num_threads(1)
    cfg = VoiceConfig() if args.candidates is None else VoiceConfig(candidates=args.candidates)
    pool = [v.id for v in candidate_voices(cfg)]
    rng = np.random.default_rng(args.seed)
    true_voices = [pool[i] for i in rng.choice(len(pool), size=min(args.persons, len(pool)), replace=False)]
    rows = []
    started_all = time.perf_counter()
    for number, true_voice in enumerate(true_voices):
        speech = synthesize(make_script(rng, SCRIPT_S), true_voice)
        started = time.perf_counter()
        choice = choose_voice(speech.wav, cfg, encoder_url=args.encoder)
        row = {"person": number, "true_voice": true_voice, "speech_s": round(speech.duration_s, 1),
               "rank": choice.rank_of(true_voice, "resemblyzer"), "candidates": len(choice.ranking),
               "chosen": choice.candidate.id,
               "tempo": choice.shift.tempo, "semitones": choice.shift.semitones,
               "true_score": round(max(c.scores["resemblyzer"] for c in choice.ranking if c.voice == true_voice), 4),
               "best_score": round(choice.ranking[0].scores["resemblyzer"], 4),
               "seconds": round(time.perf_counter() - started, 1)}
        if args.encoder:
            row["foundation_rank"] = choice.rank_of(true_voice, "foundation")
            row["agreement"] = choice.agreement
        rows.append(row)
        print(json.dumps(row), flush=True)
    ranks = [r["rank"] for r in rows]
    report = {"persons": len(rows), "candidate_voices": len(pool), "script_s": SCRIPT_S,
              "config": cfg.model_dump(mode="json"), "first": sum(r == 1 for r in ranks), "top3": sum(r <= 3 for r in ranks),
              "mean_rank": round(float(np.mean(ranks)), 2), "target": "first for >= 9 of 10",
              "seconds_total": round(time.perf_counter() - started_all, 1), "rows": rows,
              "machine": describe_machine(("resemblyzer", "piper-tts"))}
    if args.encoder:
        report["foundation_first"] = sum(r["foundation_rank"] == 1 for r in rows)
        report["encoder"] = args.encoder
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"true voice first for {report['first']} of {len(rows)} (top 3: {report['top3']}) → {RESULTS}")


if __name__ == "__main__":
    main()
