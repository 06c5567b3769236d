"""datasets.media: encode → probe → read back, other containers, and one-line errors for bad files."""

import av
import numpy as np
import pytest

from datasets import media, storage
from datasets.errors import ReplicaError

FPS, RATE = 25, 16_000


def gradient_frames(count: int = 50, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose brightness steps by 4 per frame (so a frame's index can be read back)."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[:] = (np.arange(count) * 4).astype(np.uint8)[:, None, None, None]
    return frames


def noise(seconds: float, rms: float = 0.2, seed: int = 0) -> np.ndarray:
    return (rms * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


def write_audio_file(path: str, wav: np.ndarray, fmt: str, codec: str) -> None:
    """A real audio-only file in another container (wav/flac/mkv/webm), written with FFmpeg."""
    with av.open(path, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=48_000 if codec == "libopus" else RATE)
        stream.layout = "stereo"
        rate = stream.codec_context.sample_rate
        resampled = np.interp(np.arange(int(len(wav) * rate / RATE)) * RATE / rate, np.arange(len(wav)), wav)
        stereo = np.stack([resampled, resampled]).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(stereo.reshape(1, -1, order="F"), format="flt", layout="stereo")
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_encode_probe_read_round_trip(tmp_path):
    url = str(tmp_path / "clip.mp4")
    media.write_mp4(url, gradient_frames(), fps=FPS, audio=noise(2.0), sample_rate=RATE)
    info = media.probe(url)
    assert (info.has_video, info.has_audio, info.width, info.height) == (True, True, 64, 48)
    assert (info.video_codec, info.audio_codec, info.fps) == ("h264", "aac", 25.0)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    frames = media.read_video(url)
    assert frames.shape == (50, 48, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames.mean(axis=(1, 2, 3)) - np.arange(50) * 4).max() < 3
    wav = media.read_audio(url)
    assert wav.dtype == np.float32 and len(wav) == 2 * RATE
    assert np.sqrt(np.mean(wav**2)) == pytest.approx(0.2, rel=0.15)


def test_audio_is_fitted_to_the_video_length(tmp_path):
    url = str(tmp_path / "long_audio.mp4")
    media.write_mp4(url, gradient_frames(25), audio=noise(3.0))
    assert len(media.read_audio(url)) == RATE  # 25 frames at 25 fps: one second
    media.write_mp4(url, gradient_frames(50), audio=noise(0.5))
    wav = media.read_audio(url)
    assert len(wav) == 2 * RATE and np.abs(wav[RATE:]).max() < 0.01  # zero-padded


def test_video_is_resampled_to_a_constant_rate_and_resized(tmp_path):
    url = str(tmp_path / "clip.mp4")
    media.write_mp4(url, gradient_frames(50), fps=FPS)
    slow = media.read_video(url, fps=10, size=32)
    assert slow.shape == (20, 24, 32, 3)
    # output frame k at k/10 s shows source frame 2.5k (nearest), brightness 4 per source frame
    assert np.abs(slow.mean(axis=(1, 2, 3)) - np.arange(20) * 2.5 * 4).max() < 7
    assert len(media.read_video(url, fps=50)) == 100
    assert sum(1 for _ in media.iter_video(url)) == 50


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    url = str(tmp_path / "odd.mp4")
    media.write_mp4(url, gradient_frames(5, 33, 47))
    assert media.read_video(url).shape == (5, 34, 48, 3)


@pytest.mark.parametrize("fmt,codec,ext", [("wav", "pcm_s16le", "wav"), ("flac", "flac", "flac"),
                                           ("matroska", "aac", "mkv"), ("webm", "libopus", "webm"),
                                           ("mov", "aac", "mov")])
def test_reads_audio_from_other_containers(tmp_path, fmt, codec, ext):
    url = str(tmp_path / f"speech.{ext}")
    write_audio_file(url, noise(1.5), fmt, codec)
    wav = media.read_audio(url)
    assert abs(len(wav) - 1.5 * RATE) < 0.05 * RATE
    assert np.sqrt(np.mean(wav**2)) == pytest.approx(0.2, rel=0.2)
    assert media.probe(url).has_video is False


def test_reads_through_s3(s3_root):
    url = storage.join(s3_root, "clip.mp4")
    media.write_mp4(url, gradient_frames(10), audio=noise(0.4))
    assert media.probe(url).duration_s == pytest.approx(0.4, abs=0.05)
    assert media.read_video(url).shape == (10, 48, 64, 3)
    assert len(media.read_audio(url)) == int(0.4 * RATE)


def error_of(call, *args) -> str:
    with pytest.raises(ReplicaError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bad_files_give_one_line_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    good = media.encode_mp4(gradient_frames(25), audio=noise(1.0))
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(good[: len(good) // 2])
    silent = tmp_path / "silent.mp4"
    media.write_mp4(str(silent), gradient_frames(5))

    assert error_of(media.probe, str(empty)) == f"{empty}: empty file (0 bytes)"
    assert error_of(media.probe, str(text)).startswith(f"{text}: not a media file")
    assert error_of(media.read_video, str(truncated)).startswith(f"{truncated}: corrupt or truncated media file")
    assert error_of(media.probe, str(truncated)).startswith(f"{truncated}: corrupt or truncated media file")
    assert error_of(media.read_audio, str(silent)) == f"{silent}: no audio track"
    assert error_of(media.read_video, str(tmp_path / "missing.mp4")) == f"{tmp_path / 'missing.mp4'}: no such object"


def test_encode_rejects_non_frames():
    assert "expected uint8 [F, H, W, 3]" in error_of(media.encode_mp4, np.zeros((4, 8, 8), np.uint8))
