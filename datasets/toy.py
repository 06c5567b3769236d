"""Tiny, deterministic, schema-valid samples (a tone in noise, random landmarks and head parameters, a few kB
each): the data-layer fixtures shared by tests and benchmarks, and a way to try the loader without rendering."""

import numpy as np

from datasets.schema import FPS, N_EXPR, SAMPLE_RATE, Sample, frame_count


def toy_sample(key: str, seconds: float = 1.0, speaker: str = "spk0", with_face: bool = True,
               seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    sample = Sample(key=key, wav=wav, meta={"speaker": speaker, "source": "test", "license": "CC0", "fps": FPS})
    if with_face:
        frames = frame_count(seconds)
        sample.lmk = rng.uniform(0, 1, (frames, 478, 3)).astype(np.float32)
        sample.mm = {"shape": rng.standard_normal(50).astype(np.float32),
                     "expr": rng.uniform(0, 1, (frames, N_EXPR)).astype(np.float32),
                     **{k: rng.normal(0, 0.1, (frames, 3)).astype(np.float32) for k in ("jaw", "neck", "rot", "trans")}}
    return sample
