"""Text → video: the streaming pipeline on a tiny replica (real TTS, models, rasterizer, H.264/AAC)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.errors import ReplicaError
from datasets.media import probe, read_audio, read_video
from foundation.audio.features import log_mel, stream_log_mel
from foundation.conformer import STREAM_HISTORY
from render.export import ParamsExport, read_params_export
from render.pipeline import (SAMPLES_PER_FRAME, RenderOptions, face_stream, load_replica, render_chunks,
                             stream_mp4, validate_request)
from tests.render.replica import SOURCE_BOX, person_audio
from tests.replica_cli import run_replica


@pytest.fixture(scope="module")
def replica(tiny_replica):
    return load_replica(tiny_replica)


def test_cli_renders_text_to_an_mp4_whose_video_lasts_as_long_as_its_audio(tiny_replica, tmp_path):
    out, report = tmp_path / "hello.mp4", tmp_path / "report.json"
    done = run_replica("render", tiny_replica, "--text", "Hello there. Nice to meet you!", "--out", str(out),
                       "--report", str(report), cwd=tmp_path, OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr
    assert "real time" in done.stdout
    info = probe(str(out))
    frames, audio = read_video(str(out)), read_audio(str(out))
    assert info.has_audio and info.video_codec == "h264" and info.audio_codec == "aac"
    assert len(frames) >= 25 and frames.shape[1:] == (128, 96, 3)  # composited into the portrait source footage
    assert len(audio) == len(frames) * SAMPLES_PER_FRAME  # to the sample
    assert np.abs(audio).max() > 0.1  # speech, not silence
    assert frames.std(axis=0).mean() > 0.5  # the face moves


def test_streaming_stages_equal_a_whole_run(replica):
    torch.manual_seed(0)
    wav = torch.as_tensor(person_audio(2.4))[None]
    pieces = list(wav.split([640 * 3, 640 * 7, 640, 640 * 49], dim=1))
    features = replica.model.features
    whole_mel = log_mel(wav, features)
    chunked_mel = torch.cat(list(stream_log_mel(pieces, features, multiple=4)), dim=1)
    assert torch.allclose(chunked_mel, whole_mel, atol=1e-5)
    with torch.no_grad():
        latent = replica.model.encoder(whole_mel).latent
        whole = replica.model.animator(latent)
        chunked = list(face_stream(replica, pieces))
    assert len(chunked) > 3
    for key in ("expr", "jaw", "neck", "rot"):
        joined = torch.cat([c[key] for c in chunked], dim=1)
        assert torch.allclose(joined, whole[key], atol=1e-5), key


def test_chunked_frames_equal_whole_frames_and_carry_the_audio(replica):
    audio = person_audio(1.2)
    small = list(render_chunks(replica, audio=audio, options=RenderOptions(first_chunk_frames=2, chunk_frames=7)))
    big = list(render_chunks(replica, audio=audio, options=RenderOptions(first_chunk_frames=100, chunk_frames=100)))
    assert [len(c.frames) for c in small][:3] == [2, 7, 7] and len(big) == 1
    assert [c.start_frame for c in small] == list(np.cumsum([0] + [len(c.frames) for c in small[:-1]]))
    frames = np.concatenate([c.frames for c in small])
    assert frames.shape == big[0].frames.shape == (30, 128, 96, 3)
    for key, whole in big[0].params.items():
        np.testing.assert_allclose(np.concatenate([c.params[key] for c in small]), whole, atol=1e-5)
    # params agree to float rounding, which can flip a rare pixel's rounding (by 2 levels at worst, seen once)
    differ = np.abs(frames.astype(int) - big[0].frames)
    assert differ.max() <= 2 and (differ > 0).mean() < 1e-4
    np.testing.assert_array_equal(np.concatenate([c.audio for c in small]), big[0].audio)
    np.testing.assert_array_equal(big[0].audio, audio)
    assert small[-1].progress == 1.0


def test_the_head_is_composited_into_the_persons_footage_and_framings_follow_the_options(replica):
    from render.pipeline import _plate

    audio = person_audio(0.6)
    chunk = next(render_chunks(replica, audio=audio, options=RenderOptions(first_chunk_frames=15)))
    plate = _plate(replica, RenderOptions())
    (x0, y0, side), frame = SOURCE_BOX, chunk.frames[3]
    expected = plate.frames[plate.index(3)]
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y0 + side, x0:x0 + side] = False
    np.testing.assert_array_equal(frame[outside], expected[outside])  # body and background are the footage's
    inner = (slice(y0 + 16, y0 + side - 16), slice(x0 + 16, x0 + side - 16))
    assert np.abs(frame[inner].astype(int) - expected[inner]).mean() > 1  # the face is the render
    edge = ~outside
    edge[y0 + 3:y0 + side - 3, x0 + 3:x0 + side - 3] = False  # the box's outer 3 px: the crop fades out there
    assert np.abs(frame[edge].astype(int) - expected[edge]).mean() < 6  # no seam
    crop = next(render_chunks(replica, audio=audio, options=RenderOptions(framing="crop", size=32)))
    square = next(render_chunks(replica, audio=audio, options=RenderOptions(aspect="1:1")))
    assert crop.frames.shape[1:] == (32, 32, 3) and square.frames.shape[1:] == (96, 96, 3)


def test_stream_context_stays_bounded_however_long_the_script(replica):
    lengths = []
    hooks = [m.register_forward_pre_hook(lambda _, args: lengths.append(args[0].shape[1]))
             for m in (replica.model.encoder.conformer, replica.model.animator.conformer)]
    try:
        def longest(seconds: float) -> int:
            lengths.clear()
            wav = torch.as_tensor(person_audio(seconds))[None]
            with torch.no_grad():
                n = sum(c["expr"].shape[1] for c in face_stream(replica, wav.split(25 * SAMPLES_PER_FRAME, dim=1)))
            assert n == int(seconds * 25)
            return max(lengths)
        short, long = longest(14.0), longest(40.0)
    finally:
        for hook in hooks:
            hook.remove()
    assert short == long <= STREAM_HISTORY + 25 + 8  # history + one chunk + look-ahead, not the script


def test_idle_motion_keeps_brows_and_head_moving(replica):
    audio = person_audio(2.0)
    alive = np.concatenate([c.params["expr"] for c in render_chunks(replica, audio=audio)])
    still = np.concatenate([c.params["expr"] for c in render_chunks(replica, audio=audio,
                                                                    options=RenderOptions(idle=False, refine=False))])
    brows = [0, 1, 2, 3, 4]  # browDown*, browInnerUp, browOuterUp*
    assert alive[:, brows].std(axis=0).max() > 2 * still[:, brows].std(axis=0).max()


def test_the_animators_typical_face_renders_as_the_persons_tracked_rest(replica):
    """At its typical output the animator renders the face the avatar learnt: the person's mean pose and their
    median eyes, brows and cheek squint (trackers' baselines there differ from the animator's training data);
    the mouth stays the animator's, and the idle motion comes on top."""
    from render.pipeline import UPPER_FACE, _posed

    n, upper = 6, list(UPPER_FACE)
    mouth = [i for i in range(52) if i not in UPPER_FACE]
    typical = {key: value.expand(n, -1).clone() for key, value in replica.centre.items()}
    typical["jaw"] = torch.full((n, 3), 0.1)
    still = _posed(replica, typical, 0, RenderOptions(idle=False))
    torch.testing.assert_close(still.expr[:, upper], replica.rest["expr"][upper].expand(n, -1))
    torch.testing.assert_close(still.expr[:, mouth], typical["expr"][:, mouth])
    for key in ("neck", "rot"):
        torch.testing.assert_close(getattr(still, key), replica.rest[key].expand(n, 3))
    alive = _posed(replica, typical, 0, RenderOptions())
    assert (alive.expr[:, upper] - still.expr[:, upper]).abs().max() > 0.01


def test_the_animators_centre_is_its_mean_output_on_the_persons_own_speech(replica):
    """Not its output biases: fine-tuning moves the person's mean brows and pose into the weights too."""
    speech = read_audio(replica.source["video"])
    with torch.no_grad():
        out = list(face_stream(replica, [torch.as_tensor(speech[:len(speech) // 640 * 640])[None]]))
    for key in ("expr", "neck", "rot"):
        mean = torch.cat([piece[key][0] for piece in out]).mean(0)
        torch.testing.assert_close(replica.centre[key], mean, atol=1e-4, rtol=0)
    biases = torch.sigmoid(replica.model.animator.expr.bias)
    assert (replica.centre["expr"] - biases).abs().max() > 0.01


def test_parameters_export_round_trips_through_csv_and_json(replica, tmp_path):
    chunks = list(render_chunks(replica, text="Guten Morgen. Wie geht es dir?", options=RenderOptions(language="de")))
    export = ParamsExport()
    for chunk in chunks:
        export.add(chunk.params)
    for name in ("curves.csv", "curves.json"):
        export.write(str(tmp_path / name))
        back = read_params_export(str(tmp_path / name))
        for key, value in export.arrays().items():
            np.testing.assert_allclose(back[key], value, atol=1e-6)
    assert len(back["expr"]) == sum(len(c.frames) for c in chunks) > 25  # a German script rendered
    assert (tmp_path / "curves.csv").read_text().splitlines()[0].startswith("frame,time_s,browDownLeft")


@pytest.mark.parametrize("text,options,reason", [
    ("   ", {}, "is empty"),
    ("x" * 101, {"max_chars": 100}, "limit is 100"),
    ("Hallo", {"language": "xx"}, "not spoken by the voice pool"),
    ("Hello", {"voice": "espeak:nope"}, "unknown voice"),
])
def test_bad_requests_are_refused_before_any_work(replica, text, options, reason):
    with pytest.raises(ReplicaError, match=reason):
        validate_request(replica, text, None, RenderOptions(**options))


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="colour"):
        RenderOptions(colour="red")


def test_missing_partial_and_tampered_replicas_are_refused(tiny_replica, tmp_path):
    with pytest.raises(ReplicaError, match="no-such"):
        load_replica(str(tmp_path / "no-such"))
    partial, tampered = tmp_path / "partial", tmp_path / "tampered"
    shutil.copytree(tiny_replica, partial)
    (partial / "replica.json").unlink()
    with pytest.raises(ReplicaError, match="not a complete replica"):
        load_replica(str(partial))
    shutil.copytree(tiny_replica, tampered)
    with open(tampered / "voice" / "voice.json", "a") as f:
        f.write(" ")
    with pytest.raises(ReplicaError, match="fails verification: voice/voice: sha256 mismatch"):
        load_replica(str(tampered))


def test_cli_errors_are_one_line_and_leave_nothing_at_the_output(tiny_replica, tmp_path):
    (tmp_path / "noise.wav").write_bytes(b"not audio at all" * 10)
    out = tmp_path / "out.mp4"
    for args, reason in [(["--text", ""], "is empty"), (["--audio", str(tmp_path / "noise.wav")], "not a media file"),
                         (["--text", "Hi", "--language", "xx"], "not spoken")]:
        done = run_replica("render", tiny_replica, *args, "--out", str(out), cwd=tmp_path)
        assert done.returncode == 1 and reason in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not out.exists() and not list(Path(tmp_path).glob(".out.mp4*"))


def test_streamed_mp4_plays_from_every_piece_boundary(replica, tmp_path):
    pieces = list(stream_mp4(replica, audio=person_audio(1.0), options=RenderOptions(first_chunk_frames=3,
                                                                                     chunk_frames=10)))
    assert pieces[0][4:8] == b"ftyp" and len(pieces) >= 4
    played = []
    for k in range(2, len(pieces) + 1):
        prefix = tmp_path / f"prefix{k}.mp4"
        prefix.write_bytes(b"".join(pieces[:k]))
        played.append(len(read_video(str(prefix))))
        # a prefix's audio ends at an AAC frame (1024 samples) near its video's end; the whole file, exactly
        assert abs(len(read_audio(str(prefix))) - played[-1] * SAMPLES_PER_FRAME) <= 1024
    assert len(read_audio(str(prefix))) == played[-1] * SAMPLES_PER_FRAME
    assert played[0] == 3 and played == sorted(played) and played[-1] == 25
