"""Synthetic speech + head-motion datasets for the pre-training tests (tiny, built once per session)."""

import numpy as np
import pytest

from datasets.schema import Sample
from datasets.shards import write_dataset
from datasets.synth.motion import synthesize_motion
from datasets.synth.sentences import make_sentence
from foundation.morphable import N_SHAPE
from foundation.tts import synthesize

TRAIN_VOICES = ["espeak:en-us", "espeak:en-gb", "flite:slt", "flite:rms", "espeak:en-us+f3", "espeak:en-gb-scotland"]
HELDOUT_VOICES = ["flite:awb", "espeak:en-029", "espeak:en-us+m3"]


def _speech_samples(voices: list[str], clips: int, seed: int):
    rng = np.random.default_rng(seed)
    for v, voice in enumerate(voices):
        shape = (0.5 * rng.standard_normal(N_SHAPE)).astype(np.float32)
        for c in range(clips):
            speech = synthesize(make_sentence(rng), voice)
            motion = synthesize_motion(speech.wav, speech.phonemes, rng)
            frames = int(round(len(speech.wav) / 640))
            mm = {"shape": shape, **{k: getattr(motion, k)[:frames] for k in ("expr", "jaw", "neck", "rot", "trans")}}
            speaker = f"synth-{seed}-{v:02d}"
            yield Sample(key=f"{speaker}-{c:03d}", wav=speech.wav.astype(np.float32), mm=mm,
                         meta={"speaker": speaker, "voice": voice, "source": "synthetic", "license": "CC0",
                               "text": speech.text})


@pytest.fixture(scope="session")
def speech_datasets(tmp_path_factory):
    """(train URL, held-out URL): TTS speech with the head-motion parameters it drove; held-out voices unseen."""
    root = tmp_path_factory.mktemp("speech")
    train = write_dataset(str(root / "train"), _speech_samples(TRAIN_VOICES, 4, seed=1), max_count=4)
    heldout = write_dataset(str(root / "heldout"), _speech_samples(HELDOUT_VOICES, 3, seed=2), max_count=3)
    return train.folder, heldout.folder
