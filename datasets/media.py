"""Media I/O over PyAV: probe, decode audio and video, encode H.264/AAC mp4.

Everything the data pipeline reads from raw media (ingestion, corpora, the synthetic world's
renders) and every mp4 it writes goes through these few functions, so container quirks, frame-rate
resampling and error wording live in one place:

- `probe(url) -> MediaInfo`: streams, durations, sizes, codecs, without decoding.
- `read_audio(url, sample_rate)`: mono float32 at `sample_rate` (FFmpeg's resampler);
  `decode_audio_bytes(data)` the same for an upload held in memory.
- `read_video(url, fps, size)` / `iter_video(...)`: RGB frames at a constant frame rate.
- `encode_mp4(frames, fps, audio, ...)` / `write_mp4(url, ...)`: H.264 yuv420p (+ AAC).
- `Mp4Stream`: the same as a fragmented mp4 written piece by piece while frames are still being made
  (text→video streaming: every prefix ending at a returned piece plays).

URLs go through `datasets.storage` (local paths are opened directly, object stores are streamed).
Bad inputs raise `ReplicaError(url, reason)` with one readable reason: "empty file (0 bytes)",
"not a media file", "corrupt or truncated media file", "no audio track", "no video track".
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from datasets import storage
from datasets.errors import ReplicaError

# Leading bytes of the containers we accept: a file that starts like one of these but fails to
# open is damaged, anything else is not media at all (the two get different messages).
_MAGIC = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"fLaC"), (0, b"OggS"), (0, b"ID3"),
          (4, b"moov"), (4, b"mdat"), (4, b"wide"), (4, b"free"))


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds (from its headers; nothing is decoded).

    duration_s: seconds covered by the longest stream. fps: average video frame rate (frames/s).
    width/height: video frame size in pixels as displayed (after the rotation). rotation: the counter-clockwise
    quarter turns, in degrees, the file asks players to apply (phones record portrait video as rotated
    landscape); `iter_video` applies it. sample_rate: audio samples/s of the source.
    Video fields are None without a video track, audio fields None without an audio track.
    """

    url: str
    duration_s: float
    has_audio: bool
    has_video: bool
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


def _head(url: str) -> bytes:
    with storage.open_read(url) as f:
        return f.read(16)


def _looks_like_media(head: bytes) -> bool:
    return any(head[offset:offset + len(magic)] == magic for offset, magic in _MAGIC)


@contextlib.contextmanager
def _open(url: str) -> Iterator[av.container.InputContainer]:
    """Open `url` for demuxing; FFmpeg failures become one-line ReplicaErrors naming the URL."""
    if storage.size(url) == 0:
        raise ReplicaError(url, "empty file (0 bytes)")
    path = storage.local_path(url)
    with contextlib.ExitStack() as stack:
        source = path if path is not None else stack.enter_context(storage.open_read(url))
        try:
            container = av.open(source, mode="r")
        except av.error.FFmpegError as err:
            reason = "corrupt or truncated media file" if _looks_like_media(_head(url)) else "not a media file"
            raise ReplicaError(url, f"{reason} ({_ffmpeg_reason(err)})") from err
        stack.callback(container.close)
        if not container.streams.video and not container.streams.audio:
            # an mp4 cut before its index (moov) opens but lists no streams
            raise ReplicaError(url, "corrupt or truncated media file (no audio or video stream found)"
                               if _looks_like_media(_head(url)) else "not a media file (no audio or video stream)")
        yield container


def _ffmpeg_reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(err).__name__


@contextlib.contextmanager
def _decoding(url: str) -> Iterator[None]:
    """Errors raised mid-stream (a cut-off file whose index is intact) name the URL too."""
    try:
        yield
    except av.error.FFmpegError as err:
        raise ReplicaError(url, f"corrupt or truncated media file ({_ffmpeg_reason(err)})") from err


def _stream_seconds(stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def probe(url: str) -> MediaInfo:
    """Read a media file's headers: tracks, duration, frame rate and size, codecs.

    Raises ReplicaError(url, reason) for an empty, non-media or unreadable file, and for a media
    file with neither audio nor video.
    """
    with _open(url) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        lengths = [s for s in (_stream_seconds(video) if video else None,
                               _stream_seconds(audio) if audio else None) if s]
        duration = max(lengths) if lengths else (container.duration or 0) / av.time_base
        info = MediaInfo(url=url, duration_s=float(duration), has_audio=audio is not None, has_video=video is not None)
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            rotation = _rotation(container, video, url)
            width, height = video.codec_context.width, video.codec_context.height
            if rotation % 180:
                width, height = height, width
            info = replace(info, fps=float(rate) if rate else None, width=width, height=height, rotation=rotation,
                           video_codec=video.codec_context.name)
        if audio is not None:
            info = replace(info, audio_codec=audio.codec_context.name, sample_rate=audio.codec_context.sample_rate,
                            channels=audio.codec_context.channels)
        return info


def _rotation(container, stream, url: str) -> int:
    """The display rotation of a video stream in degrees (counter-clockwise, a multiple of 90), read from its
    first frame's display matrix; the container is rewound afterwards."""
    with _decoding(url):
        for frame in container.decode(stream):
            rotation = int(round((frame.rotation or 0) / 90.0)) * 90 % 360
            break
        else:
            rotation = 0
    container.seek(0)
    return rotation


def read_audio(url: str, sample_rate: int = 16_000) -> np.ndarray:
    """Decode the first audio track as mono float32 [T] in [-1, 1] at `sample_rate` Hz.

    Works for any container FFmpeg reads (mp4, mkv, mov, webm, wav, flac, ...). Channels are
    averaged; resampling is FFmpeg's swresample; the encoder padding some codecs (AAC) add
    after the last real sample is cut at the stream's declared duration.
    """
    with _open(url) as container:
        if not container.streams.audio:
            raise ReplicaError(url, "no audio track")
        stream = container.streams.audio[0]
        declared = _stream_seconds(stream)  # read while the container is open: it owns the stream
        # keep the channels through the resampler and average them here: FFmpeg's own downmix
        # adds the channels at -3 dB, which makes identical L/R louder by √2 and can clip
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks: list[np.ndarray] = []
        with _decoding(url):
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(None))
    wav = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if declared:
        wav = wav[:int(round(declared * sample_rate))]
    if len(wav) == 0:
        raise ReplicaError(url, "audio track has no decodable samples")
    return wav


def decode_audio_bytes(data: bytes, sample_rate: int = 16_000, name: str = "audio") -> np.ndarray:
    """`read_audio` of an in-memory file (an upload): mono float32 [T] at `sample_rate`; errors name `name`."""
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="replica-audio-") as f:
        f.write(data)
        f.flush()
        try:
            return read_audio(f.name, sample_rate)
        except ReplicaError as err:
            raise ReplicaError(f"{name} ({len(data)} bytes)", err.reason) from None


def _output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """Frame size after scaling the longer side to `size` (aspect kept, even dims for yuv420p)."""
    if size is None:
        return width, height
    scale = size / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def iter_video(url: str, fps: float = 25.0, size: int | None = None) -> Iterator[np.ndarray]:
    """Yield RGB frames uint8 [H, W, 3] of the first video track at a constant `fps`.

    Output frame k shows the source frame whose timestamp is nearest to k / fps (measured from
    the first frame), so variable-rate and 30/60 fps sources become exactly `fps` frames per
    second; the count is round(video duration × fps). `size`: scale so the longer side is `size`
    pixels (aspect kept, both sides even); None keeps the source size. A display rotation in the file
    (portrait phone video) is applied, so frames come out the way players show them. Memory stays at two
    frames, so this suits long videos; `read_video` stacks it.
    """
    if fps <= 0:
        raise ReplicaError(f"fps={fps}", "must be positive")
    with _open(url) as container:
        if not container.streams.video:
            raise ReplicaError(url, "no video track")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        width, height = _output_size(ctx.width, ctx.height, size)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        index, origin = 0, None
        held = held_rgb = None  # the latest decoded source frame, converted only if it is shown
        held_t = 0.0
        turns = 0
        with _decoding(url):
            for frame in container.decode(stream):
                if held is None:
                    turns = int(round((frame.rotation or 0) / 90.0)) % 4
                t = float(frame.time) if frame.time is not None else (held_t + 1 / float(rate) if held else 0.0)
                if held is None:
                    origin, held, held_t = t, frame, t
                    continue
                # the held frame is nearest for every output time before the midpoint to this one
                while origin + index / fps < (held_t + t) / 2:
                    held_rgb = held_rgb if held_rgb is not None else _rgb(held, width, height, turns)
                    yield held_rgb
                    index += 1
                held, held_rgb, held_t = frame, None, t
        if held is None:
            raise ReplicaError(url, "video track has no decodable frames")
        end = held_t + (float(held.duration * held.time_base) if held.duration else 1 / float(rate))
        total = max(index, int(round((end - origin) * fps)))
        while index < total:
            held_rgb = held_rgb if held_rgb is not None else _rgb(held, width, height, turns)
            yield held_rgb
            index += 1


def _rgb(frame, width: int, height: int, turns: int) -> np.ndarray:
    """A decoded frame as uint8 RGB [H, W, 3] at width × height (stored orientation), then turned
    `turns` quarter turns counter-clockwise for display."""
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def read_video(url: str, fps: float = 25.0, size: int | None = None) -> np.ndarray:
    """All frames of the first video track as uint8 [F, H, W, 3] RGB at a constant `fps`.

    See `iter_video` for the resampling rule and `size`; F = round(video duration × fps).
    """
    return np.stack(list(iter_video(url, fps=fps, size=size)))


def encode_mp4(frames: np.ndarray, fps: float = 25.0, audio: np.ndarray | None = None, sample_rate: int = 16_000,
               crf: int = 20, preset: str = "veryfast") -> bytes:
    """Encode RGB frames (and optional mono audio) as an mp4: H.264 yuv420p + AAC.

    frames: uint8 [F, H, W, 3] RGB; odd H or W are edge-padded by one pixel (yuv420p needs even
    sizes). fps: frames per second. audio: float32 [T] in [-1, 1] at `sample_rate` Hz, or None for
    a silent (video-only) file; it is zero-padded or trimmed to the video's length F / fps so
    both tracks end together. crf: x264 constant rate factor (0 lossless … 51 worst; 18–23 is
    visually good). preset: x264 speed/size trade-off ("ultrafast" … "veryslow").
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ReplicaError(f"frames {frames.dtype} {list(frames.shape)}", "expected uint8 [F, H, W, 3] with F ≥ 1")
    if not 0 <= crf <= 51:
        raise ReplicaError(f"crf={crf}", "must be in [0, 51]")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"crf": str(crf), "preset": preset}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for rgb in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            n_samples = int(round(len(frames) / float(rate) * sample_rate))
            wav = np.asarray(audio, dtype=np.float32).reshape(-1)[:n_samples]
            wav = np.pad(wav, (0, n_samples - len(wav)))
            chunk = av.AudioFrame.from_ndarray(np.clip(wav, -1, 1)[None, :], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = sample_rate, 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return out.getvalue()


def write_mp4(url: str, frames: np.ndarray, fps: float = 25.0, audio: np.ndarray | None = None,
              sample_rate: int = 16_000, crf: int = 20, preset: str = "veryfast") -> None:
    """Encode with `encode_mp4` and write the file to `url` atomically (any storage URL)."""
    storage.write_bytes(url, encode_mp4(frames, fps=fps, audio=audio, sample_rate=sample_rate, crf=crf, preset=preset))


_AAC_PRIMING = 1024
"""Samples of encoder delay FFmpeg's AAC encoder puts before the audio (one AAC frame)."""


class _Pieces:
    """A write-only, unseekable file for the muxer: collects bytes until drained (fragmented mp4 never seeks)."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class Mp4Stream:
    """A fragmented mp4 (H.264 yuv420p + AAC mono) encoded chunk by chunk, audio interleaved with video.

        stream = Mp4Stream(width, height)
        for frames, audio in chunks:              # uint8 [n, H, W, 3]; float32 [n · sample_rate / fps]
            send(stream.write(frames, audio))     # bytes ready so far (possibly b"")
        send(stream.close())

    The init segment comes first (`empty_moov`), then one fragment per chunk: each chunk starts with a
    keyframe and its fragment is complete when the next chunk (or `close`) begins, so the bytes handed out
    so far always end at a fragment boundary and play on their own. Memory holds one chunk, whatever the
    length of the video. Video and audio durations agree to the sample; the first 64 ms of audio (1024
    samples at 16 kHz) decode as AAC's priming, near-silence, since no edit list can hide it here.
    """

    def __init__(self, width: int, height: int, fps: float = 25.0, sample_rate: int | None = 16_000, crf: int = 20,
                 preset: str = "veryfast"):
        if not 0 <= crf <= 51:
            raise ReplicaError(f"crf={crf}", "must be in [0, 51]")
        self.width, self.height = width + width % 2, height + height % 2  # yuv420p needs even sizes
        self.fps, self.sample_rate = Fraction(fps).limit_denominator(1001), sample_rate
        self._sink = _Pieces()
        self._container = av.open(self._sink, mode="w", format="mp4",
                                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        self._video = self._container.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height, self._video.pix_fmt = self.width, self.height, "yuv420p"
        # zerolatency: no frame look-ahead inside x264, so a chunk's packets come out with the chunk
        self._video.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency"}
        self._audio = None
        if sample_rate is not None:
            self._audio = self._container.add_stream("aac", rate=sample_rate)
            self._audio.layout = "mono"
        self.frames = self.samples = 0

    def write(self, frames: np.ndarray, audio: np.ndarray | None = None) -> bytes:
        """Encode one chunk (frames and, with audio, exactly their duration of samples); returns ready bytes."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ReplicaError(f"frames {frames.dtype} {list(frames.shape)}", "expected uint8 [n, H, W, 3] with n ≥ 1")
        if frames.shape[1] + frames.shape[1] % 2 != self.height or frames.shape[2] + frames.shape[2] % 2 != self.width:
            raise ReplicaError(f"frames {list(frames.shape)}", f"stream is {self.width}×{self.height}")
        pad_h, pad_w = self.height - frames.shape[1], self.width - frames.shape[2]
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if i == 0:  # each chunk opens a fragment
                frame.pict_type = av.video.frame.PictureType.I
            self._container.mux(self._video.encode(frame))
        self.frames += len(frames)
        if self._audio is not None:
            expected = int(round(self.frames / float(self.fps) * self.sample_rate)) - self.samples
            wav = np.zeros(expected, np.float32) if audio is None else np.asarray(audio, np.float32).reshape(-1)
            if len(wav) != expected:
                raise ReplicaError(f"audio of {len(wav)} samples", f"the chunk's {len(frames)} frames need {expected}")
            # A fragmented mp4 carries no edit list to hide AAC's priming, so its first 1024 decoded samples are
            # the encoder's; drop that many from the input so every later sample decodes where it belongs.
            skip = max(0, min(_AAC_PRIMING - self.samples, expected))
            if skip < expected:
                piece = av.AudioFrame.from_ndarray(np.clip(wav[skip:], -1, 1)[None, :], format="fltp", layout="mono")
                piece.sample_rate, piece.pts = self.sample_rate, self.samples + skip
                self._container.mux(self._audio.encode(piece))
            self.samples += expected
        return self._sink.drain()

    def close(self) -> bytes:
        """Flush the encoders and finish the file; returns the last bytes."""
        self._container.mux(self._video.encode())
        if self._audio is not None:
            self._container.mux(self._audio.encode())
        self._container.close()
        return self._sink.drain()
