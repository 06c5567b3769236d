"""Ingesting a person's video for replica creation: real small files of every kind a phone produces, and every
rejection with its one-line reason."""

from __future__ import annotations

import functools

import av
import numpy as np
import pydantic
import pytest

from datasets.errors import ReplicaError
from datasets.media import write_mp4
from foundation.tts import synthesize
from personalize.ingest import PersonIngestConfig, crop_boxes, ingest_person
from tests.datasets.talking import astronaut_frames

SECONDS = 3.0
CFG = PersonIngestConfig(min_seconds=2.0, track_size=256, min_face_px=32, face_check_frames=4)


@functools.cache
def speech() -> np.ndarray:
    wav = synthesize("Hello there, this is a short test of the replica ingest step.", "flite:slt").wav
    return np.pad(wav, (0, max(0, int(SECONDS * 16000) - len(wav))))[:int(SECONDS * 16000)]


def frames(fps: float = 25.0, size: int = 128) -> np.ndarray:
    return astronaut_frames(int(SECONDS * fps), size=size)


def write(path, video, audio=True, fps=25.0) -> str:
    write_mp4(str(path), video, fps=fps, audio=speech() if audio is True else audio, crf=18)
    return str(path)


def test_a_talking_face_becomes_a_stable_crop_with_landmarks(tmp_path):
    person = ingest_person(write(tmp_path / "talk.mp4", frames()), 64, CFG)
    assert person.frames.shape == (75, 64, 64, 3) and person.report["usable_fraction"] == 1.0
    assert len(person.audio) == 75 * 640
    assert person.lmk.shape == (75, 478, 3)
    # the face sits inside the crop, and the crop never changes size
    assert (person.lmk[..., :2] > 0.02).all() and (person.lmk[..., :2] < 0.98).all()
    assert np.ptp(person.boxes[:, 2]) == 0
    assert np.abs(np.diff(person.boxes[:, :2], axis=0)).max() < 2.0  # pixels per frame: glides, never jumps


def test_only_the_first_max_seconds_of_a_long_video_are_used_and_the_report_says_what_was_left_out(tmp_path):
    person = ingest_person(write(tmp_path / "long.mp4", frames()), 64, CFG.model_copy(update={"max_seconds": 2.0}))
    assert person.frames.shape[0] == len(person.lmk) == len(person.boxes) == 50
    assert len(person.audio) == 50 * 640
    assert person.report["used_s"] == 2.0 and person.report["left_out_s"] == pytest.approx(1.0, abs=0.05)
    whole = ingest_person(write(tmp_path / "whole.mp4", frames()), 64, CFG)
    assert whole.report["left_out_s"] == 0.0 and whole.report["used_s"] == 3.0
    # the same frames tracked the same way whether or not the rest follows (in source pixels: the crop's smoothing
    # sees a different end)
    def source_px(p):
        return p.lmk[..., :2] * p.boxes[:, None, 2:3] + p.boxes[:, None, :2]

    np.testing.assert_allclose(source_px(person), source_px(whole)[:50], atol=1e-3)


def test_a_maximum_length_below_the_minimum_is_a_config_error():
    with pytest.raises(pydantic.ValidationError, match="max_seconds"):
        PersonIngestConfig(min_seconds=30.0, max_seconds=10.0)


def test_crop_boxes_stay_inside_the_frame_even_where_the_margin_would_reach_past_it():
    # a 640x360 landscape frame: a face 200 px tall drifting from the middle to the right edge and the bottom
    frames = 50
    centre = np.stack([np.linspace(320, 630, frames), np.linspace(180, 300, frames)], 1)
    offsets = np.random.default_rng(0).uniform(-1, 1, (478, 2)) * np.array([80, 100])
    lmk = np.concatenate([(centre[:, None] + offsets) / np.array([640, 360]), np.zeros((frames, 478, 1))], -1)
    boxes = crop_boxes(lmk, 640, 360, PersonIngestConfig())
    side = boxes[0, 2]
    assert side == 360  # 1.9 × 200 px of face would be 380: the frame's height is all there is
    assert (boxes[:, 2] == side).all() and (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + side <= 640 + 1e-9).all() and (boxes[:, 1] + side <= 360 + 1e-9).all()
    assert np.abs(np.diff(boxes[:, :2], axis=0)).max() < 10  # still glides


def test_a_30_fps_video_is_resampled_to_25(tmp_path):
    person = ingest_person(write(tmp_path / "thirty.mp4", frames(fps=30.0), fps=30.0), 64, CFG)
    assert len(person.frames) == 75 and person.report["source_fps"] == pytest.approx(30.0)


def test_a_rotated_portrait_video_is_turned_upright(tmp_path):
    portrait = np.pad(frames(), ((0, 0), (0, 64), (0, 0), (0, 0)), mode="edge")  # [F, 192, 128, 3]: tall
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 192, 128, "yuv420p"  # stored landscape, as phones do
        stream.set_display_rotation(-90)  # players turn it clockwise back to portrait
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        for rgb in portrait:
            stored = np.ascontiguousarray(np.rot90(rgb, 1))  # counter-clockwise: what the display undoes
            container.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        container.mux(stream.encode())
        chunk = av.AudioFrame.from_ndarray(speech()[None], format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    person = ingest_person(str(path), 64, CFG)
    assert person.report["rotation"] == 270 and person.report["source_size"] == [128, 192]
    assert person.report["usable_fraction"] > 0.9


@pytest.mark.parametrize("case, reason", [
    ("no_audio", "no audio track"),
    ("too_short", "shorter than the 5 s minimum"),
    ("silence", "no speech"),
    ("no_face", "no face in most frames"),
    ("two_faces", "several faces"),
    ("small_face", "face too small"),
    ("truncated", "corrupt or truncated media file"),
    ("not_media", "not a media file"),
])
def test_bad_videos_are_rejected_with_the_reason(tmp_path, case, reason):
    cfg = CFG
    path = tmp_path / f"{case}.mp4"
    if case == "no_audio":
        write(path, frames(), audio=None)
    elif case == "too_short":
        write(path, frames())
        cfg = CFG.model_copy(update={"min_seconds": 5.0})
    elif case == "silence":
        write(path, frames(), audio=np.zeros(int(SECONDS * 16000), np.float32))
    elif case == "no_face":
        write(path, np.random.default_rng(0).integers(0, 255, (75, 128, 128, 3), dtype=np.uint8))
    elif case == "two_faces":
        write(path, np.concatenate([frames(), frames()], axis=2))
    elif case == "small_face":
        write(path, frames())
        cfg = CFG.model_copy(update={"min_face_px": 200})
    elif case == "truncated":
        whole = tmp_path / "whole.mp4"
        write(whole, frames())
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    else:
        path.write_bytes(b"this is a text file, not a video\n" * 100)
    with pytest.raises(ReplicaError) as err:
        ingest_person(str(path), 64, cfg)
    message = str(err.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message


def test_the_face_crop_is_an_antialiased_resample_that_glides_smoothly():
    from personalize.ingest import cut_box

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (360, 640, 3)).astype(np.uint8)  # noise: the hardest case for aliasing
    # a box on the block grid, 4× the crop: each crop pixel is the mean of its 4×4 source block
    crop = cut_box(frame, np.array([100.0, 40.0, 256.0]), 64).astype(float)
    blocks = frame[40:296, 100:356].reshape(64, 4, 64, 4, 3).mean((1, 3))
    assert np.abs(crop - blocks).max() <= 1.0
    # a box gliding by quarter pixels changes the crop by the same small amount at every step
    steps = [cut_box(frame, np.array([100.0 + d, 40.0, 256.0]), 64).astype(float) for d in np.arange(0, 3.01, 0.25)]
    changes = [np.abs(b - a).mean() for a, b in zip(steps, steps[1:])]
    assert max(changes) < 1.15 * min(changes)
    # a box reaching past the frame repeats the edge pixels
    edge = cut_box(frame, np.array([600.0, 0.0, 80.0]), 40)
    assert (edge[:, -10:] == edge[:, -11:-10]).all()
