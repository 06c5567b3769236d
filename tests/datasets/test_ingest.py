"""Ingestion of raw talking videos into samples, through the real Ray fan-out and storage."""

import io
import shutil

import numpy as np
import pytest

from cluster.ingest import run_ingest
from datasets import media, storage
from datasets.ingest import IngestConfig, plan_windows
from datasets.loader import iter_tar_samples
from datasets.schema import FPS, decode, wav_bytes
from datasets.shards import read_manifest
from tests.datasets.talking import astronaut_frames

SPEECH = ("Hello there. I am an astronaut, and I have been to space. "
          "The view of the earth from up there is wonderful.")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A folder with `talk.mp4`: ~5 s of espeak speech muxed with the moving astronaut (128²)."""
    from foundation.tts import synthesize

    folder = tmp_path_factory.mktemp("raw")
    speech = synthesize(SPEECH, "espeak:en-us")
    frames = astronaut_frames(int(np.ceil(speech.duration_s * FPS)))
    media.write_mp4(str(folder / "talk.mp4"), frames, FPS, speech.wav)
    return folder


def upload(folder, root: str, names: list[str]) -> str:
    """Copy raw files to `<root>/raw/` on any storage; returns that folder's URL."""
    for name in names:
        storage.write_bytes(storage.join(root, "raw", name), (folder / name).read_bytes())
    return storage.join(root, "raw")


def samples_of(out: str) -> list:
    return [decode(m) for url in read_manifest(out).shard_urls() for m in iter_tar_samples(url, {})]


def test_talking_video_becomes_clips_with_landmarks(ray_cluster, raw, any_root):
    out = storage.join(any_root, "ds")
    report = run_ingest([upload(raw, any_root, ["talk.mp4"])], out, speaker="astro", license="CC0")
    assert (report.files_in, report.files_ok, report.bad_files) == (1, 1, [])
    assert report.clips_out >= 1
    samples = samples_of(out)
    assert len(samples) == report.clips_out == read_manifest(out).num_samples
    first = samples[0]
    assert first.lmk.shape == (100, 478, 3) and np.isfinite(first.lmk).all()
    assert np.load(io.BytesIO(first.extra["bs.npy"])).shape == (100, 52)
    assert len(first.wav) == 4 * 16_000
    assert first.meta["speaker"] == "astro" and first.meta["license"] == "CC0" and first.meta["text"] is None
    assert first.meta["source"].endswith("raw/talk.mp4") and first.meta["face_found"] >= 0.8
    clip = raw.parent / f"clip-{report.clips_out}.mp4"
    clip.write_bytes(first.mp4)
    assert media.read_video(str(clip)).shape == (100, 128, 128, 3)
    assert not media.probe(str(clip)).has_audio
    assert read_manifest(out).info["clips_out"] == report.clips_out


def test_bad_files_are_reported_and_the_batch_completes(ray_cluster, raw, tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(raw / "talk.mp4", batch / "talk.mp4")
    (batch / "empty.mp4").write_bytes(b"")
    (batch / "notes.mp4").write_text("meeting notes, not a video\n" * 50)
    whole = (raw / "talk.mp4").read_bytes()
    (batch / "cut.mp4").write_bytes(whole[: len(whole) // 3])
    frames = astronaut_frames(30)
    media.write_mp4(str(batch / "mute.mp4"), frames)
    media.write_mp4(str(batch / "dub.mp4"), frames)  # silent video + a same-stem wav: paired
    (batch / "dub.wav").write_bytes(wav_bytes(media.read_audio(str(raw / "talk.mp4"))[:16_000 * 6 // 5]))

    report = run_ingest([str(batch)], str(tmp_path / "ds"))
    reasons = {row["path"].rsplit("/", 1)[-1]: row["reason"] for row in report.bad_files}
    assert reasons["empty.mp4"] == "empty file (0 bytes)"
    assert reasons["notes.mp4"].startswith("not a media file")
    assert reasons["cut.mp4"].startswith("corrupt or truncated media file")
    assert reasons["mute.mp4"] == "no audio track"
    assert set(reasons) == {"empty.mp4", "notes.mp4", "cut.mp4", "mute.mp4"}
    assert (report.files_in, report.files_ok) == (6, 2)
    speakers = {s.meta["speaker"] for s in samples_of(str(tmp_path / "ds"))}
    assert speakers == {"talk", "dub"}
    assert read_manifest(str(tmp_path / "ds")).info["bad_files"] == report.bad_files


def test_rerun_with_the_same_inputs_is_skipped(ray_cluster, raw, tmp_path):
    out = str(tmp_path / "ds")
    first = run_ingest([str(raw / "talk.mp4")], out)
    created = read_manifest(out).created
    again = run_ingest([str(raw / "talk.mp4")], out)
    assert again.skipped and not first.skipped
    assert again.clips_out == first.clips_out and read_manifest(out).created == created


def test_windows_open_at_speech_and_drop_silence_and_short_tails():
    cfg = IngestConfig(window_s=2.0, preroll_s=0.0, min_clip_s=1.0, min_speech_fraction=0.5)
    vad_frames_per_s = 1 / 0.03
    mask = np.zeros(int(11 * vad_frames_per_s), bool)
    mask[int(1 * vad_frames_per_s):int(5 * vad_frames_per_s)] = True  # speech from 1 s to 5 s
    mask[int(8 * vad_frames_per_s):int(8.3 * vad_frames_per_s)] = True  # a short blip at 8 s
    mask[int(10.6 * vad_frames_per_s):] = True  # speech in the last 0.4 s
    windows, dropped = plan_windows(mask, 11 * FPS, cfg)
    assert [(round(s / FPS, 1), round(e / FPS, 1)) for s, e in windows] == [(1.0, 3.0), (3.0, 5.0)]
    assert dropped == {"no speech": 1, "too short": 1}
