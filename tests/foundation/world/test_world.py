"""The synthetic world: reproducible clips, schema-valid datasets through Ray, person videos, audio-only mode."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.synth import synth_dataset
from foundation.world import build_world, synth_person
from datasets.loader import LoaderConfig, ShardLoader
from datasets.media import probe, read_audio, read_video
from datasets.schema import validate
from datasets.shards import read_manifest
from foundation.world import SynthConfig

TINY = dict(size=64, clip_seconds=(1.0, 1.5), voices=["flite:*"], atlas_size=256, supersample=1)


def _world(**overrides):
    return build_world(SynthConfig(**{**TINY, **overrides}).model_dump_json())


def test_clip_is_reproducible_from_the_seed():
    first = _world(seed=5).clip(0, 1)
    build_world.cache_clear()
    again = _world(seed=5).clip(0, 1)
    for name in ("expr", "jaw", "neck", "rot", "trans", "shape", "viewmat", "K"):
        np.testing.assert_array_equal(first.mm[name], again.mm[name])
    np.testing.assert_array_equal(first.lmk, again.lmk)
    np.testing.assert_array_equal(first.wav, again.wav)
    assert first.mp4 == again.mp4
    assert first.meta["text"] == again.meta["text"]


def test_clip_is_a_valid_sample_with_matching_frames():
    sample = _world(seed=1).clip(0, 0)
    validate(sample)
    frames = len(sample.mm["expr"])
    assert sample.lmk.shape == (frames, 478, 3)
    assert sample.meta["speaker"] == "synth-s1-id0000" and sample.meta["voice"].startswith("flite:")
    assert sample.meta["source"] == "synthetic" and sample.meta["license"] == "CC0 (synthetic)"
    info = probe_bytes(sample.mp4)
    assert abs(info - frames) <= 1
    # Projected landmarks lie inside the image, around its centre (a frontal head-and-shoulders framing).
    assert (sample.lmk[..., :2] > 0.05).all() and (sample.lmk[..., :2] < 0.95).all()


def probe_bytes(mp4: bytes) -> int:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(mp4)
        f.flush()
        return len(read_video(f.name))


def test_no_video_mode_keeps_audio_params_and_landmarks():
    sample = _world(video=False).clip(0, 0)
    assert sample.mp4 is None
    assert sample.lmk is not None and sample.mm is not None and len(sample.wav) > 0


def test_synthetic_dataset_through_ray_loads_and_rerun_skips(ray_cluster, tmp_path):
    cfg = SynthConfig(**TINY, identities=2, clips_per_identity=1, seed=3)
    out = str(tmp_path / "synth")
    info = synth_dataset(cfg, out, show_progress=False)
    assert info["clips"] == 2 and info["speakers"] == ["synth-s3-id0000", "synth-s3-id0001"]
    manifest = read_manifest(out)
    assert manifest.num_samples == 2 and manifest.info["inputs"] == info["inputs"]
    batch = next(iter(ShardLoader(out, LoaderConfig(batch_size=2, num_workers=0, window_s=1.0))))
    assert batch["mm"]["expr"].shape[0] == 2
    assert synth_dataset(cfg, out, show_progress=False)["skipped"] is True


def test_person_video_has_params_for_every_frame_and_speech(tmp_path):
    out = str(tmp_path / "person.mp4")
    report = synth_person(2.0, out, SynthConfig(**TINY, seed=2))
    params = np.load(report["params"])
    frames = read_video(out)
    assert abs(len(frames) - len(params["expr"])) <= 1
    assert params["lmk"].shape[0] == len(params["expr"]) and str(params["voice"]) == report["voice"]
    audio = read_audio(out)
    assert np.abs(audio).max() > 0.05
    assert probe(out).has_audio


@pytest.mark.parametrize("probability", [1.0])
def test_photo_identity_is_textured_from_the_photo(probability):
    person = _world(photo_probability=probability).identity(0)
    assert person.appearance.traits["photo"] is True


def test_people_of_different_seeds_never_share_a_speaker_name():
    assert _world(seed=1, video=False).identity(0).id != _world(seed=2, video=False).identity(0).id
