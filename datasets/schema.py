"""The sample schema: one sample = one clip window of one speaker.

WebDataset members of a sample (key `<source>-<speaker>-<clip>`, no dots):

| member    | content                                                                     |
|-----------|-----------------------------------------------------------------------------|
| `wav`     | 16 kHz mono PCM16 WAV                                                        |
| `mp4`     | optional: 25 fps H.264 frames, no audio                                      |
| `lmk.npy` | optional: [F, 478, 3] float32 MediaPipe-convention landmarks (x, y in [0, 1]) |
| `bs.npy`  | optional: [F, 52] float32 MediaPipe blendshape scores in `EXPRESSION_NAMES` order (ingested video) |
| `mm.npz`  | optional: head-model parameters `shape` [S], `expr` [F, 52], `jaw`/`neck`/`rot`/`trans` [F, 3], camera `viewmat` [4, 4], `K` [3, 3], `width`, `height` |
| `json`    | speaker, source, license, fps, sample_rate, duration_s, optional text/phones/voice |

Frame count F = round(duration_s * fps). Audio features are *not* stored: the loader computes
them from `wav` so one feature config lives in code. `validate` is run on write and on read.
"""

from __future__ import annotations

import io
import json
import re
import wave
from dataclasses import dataclass, field

import numpy as np

from datasets.errors import ReplicaError

SCHEMA_VERSION = 1
SAMPLE_RATE = 16_000
FPS = 25
N_LANDMARKS = 478
EXPRESSION_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)  # fmt: skip
"""The columns of every `expr` array: the 52 ARKit blendshapes, as MediaPipe FaceLandmarker's blendshape
categories in its order without `_neutral` (51 names), then `tongueOut` (ARKit's 52nd, which MediaPipe
does not estimate). "Left" is the subject's left (+x). The one definition; everything imports it."""
N_EXPR = len(EXPRESSION_NAMES)


def expression_indices(name: str) -> list[int]:
    """Columns of `name` in `EXPRESSION_NAMES`, or of its Left and Right halves (`"mouthSmile"` → two)."""
    if name in EXPRESSION_NAMES:
        return [EXPRESSION_NAMES.index(name)]
    sides = [EXPRESSION_NAMES.index(name + side) for side in ("Left", "Right") if name + side in EXPRESSION_NAMES]
    if not sides:
        raise KeyError(name)
    return sides

MM_FRAME_KEYS = ("expr", "jaw", "neck", "rot", "trans")
REQUIRED_META = ("speaker", "source", "license")
MAX_KEY_LEN = 80  # tar (ustar) member names hold 100 characters: key + "." + the longest extension
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass
class Sample:
    """One decoded clip window.

    wav: [T] float32 in [-1, 1] at 16 kHz. lmk: [F, 478, 3] or None. mm: dict of arrays or None.
    mp4: encoded video bytes or None (decoded on demand, most training needs only audio + params).
    """

    key: str
    wav: np.ndarray
    meta: dict
    lmk: np.ndarray | None = None
    mm: dict[str, np.ndarray] | None = None
    mp4: bytes | None = None
    extra: dict[str, bytes] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.wav) / SAMPLE_RATE

    @property
    def num_frames(self) -> int:
        return frame_count(self.duration_s, self.meta.get("fps", FPS))


def frame_count(duration_s: float, fps: float = FPS) -> int:
    """Video frames covering `duration_s` seconds at `fps`."""
    return int(round(duration_s * fps))


def wav_bytes(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode float audio [T] in [-1, 1] as 16-bit PCM mono WAV bytes."""
    pcm = (np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Decode PCM16 WAV bytes → (float32 [T] in [-1, 1] (first channel), sample rate)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.reshape(-1, channels)[:, 0].astype(np.float32) / 32767.0, rate


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a `.npy` member (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def key_part(text: str) -> str:
    """`text` made safe for one '-'-separated part of a sample key: letters, digits and '_' only."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"


def validate(sample: Sample) -> None:
    """Raise ReplicaError(key, reason) unless `sample` follows the schema."""
    key = sample.key
    if not _KEY_RE.match(key or ""):
        raise ReplicaError(f"sample {key!r}", "key must be letters, digits, '_' or '-' (no dots)")
    if len(key) > MAX_KEY_LEN:
        raise ReplicaError(f"sample {key[:20]}…", f"key is {len(key)} characters; at most {MAX_KEY_LEN} fit a tar member name")
    wav = sample.wav
    if wav.ndim != 1 or wav.dtype != np.float32:
        raise ReplicaError(f"sample {key}", f"wav must be float32 [T], got {wav.dtype} {list(wav.shape)}")
    if len(wav) < SAMPLE_RATE // 10:
        raise ReplicaError(f"sample {key}", f"wav too short ({len(wav)} samples; at least 0.1 s)")
    if not np.isfinite(wav).all():
        raise ReplicaError(f"sample {key}", "wav has non-finite values")
    missing = [k for k in REQUIRED_META if not sample.meta.get(k)]
    if missing:
        raise ReplicaError(f"sample {key}", f"json lacks {', '.join(missing)}")
    frames = sample.num_frames
    if sample.lmk is not None:
        lmk = sample.lmk
        if lmk.ndim != 3 or lmk.shape[1:] != (N_LANDMARKS, 3):
            raise ReplicaError(f"sample {key}", f"lmk.npy must be [F, {N_LANDMARKS}, 3], got {list(lmk.shape)}")
        if abs(lmk.shape[0] - frames) > 1:
            raise ReplicaError(f"sample {key}", f"lmk.npy has {lmk.shape[0]} frames, audio implies {frames}")
    if sample.mm is not None:
        for name in MM_FRAME_KEYS:
            if name not in sample.mm:
                raise ReplicaError(f"sample {key}", f"mm.npz lacks {name}")
            arr = sample.mm[name]
            width = N_EXPR if name == "expr" else 3
            if arr.ndim != 2 or arr.shape[1] != width or abs(arr.shape[0] - frames) > 1:
                raise ReplicaError(f"sample {key}", f"mm.npz {name} must be [~{frames}, {width}], got {list(arr.shape)}")


def encode(sample: Sample) -> dict[str, bytes]:
    """Validate and serialise a sample into WebDataset members (`__key__` included)."""
    validate(sample)
    meta = {"fps": FPS, "sample_rate": SAMPLE_RATE, **sample.meta, "duration_s": round(sample.duration_s, 4)}
    members = {"__key__": sample.key, "wav": wav_bytes(sample.wav), "json": json.dumps(meta).encode()}
    if sample.mp4 is not None:
        members["mp4"] = sample.mp4
    if sample.lmk is not None:
        members["lmk.npy"] = npy_bytes(sample.lmk.astype(np.float32))
    if sample.mm is not None:
        members["mm.npz"] = _npz_bytes(sample.mm)
    members.update(sample.extra)
    return members


def decode(members: dict[str, bytes]) -> Sample:
    """Parse and validate WebDataset members into a Sample (raises on a malformed sample)."""
    key = members.get("__key__", "?")
    try:
        meta = json.loads(members["json"])
        wav, rate = read_wav(members["wav"])
        lmk = np.load(io.BytesIO(members["lmk.npy"]), allow_pickle=False) if "lmk.npy" in members else None
        mm = None
        if "mm.npz" in members:
            with np.load(io.BytesIO(members["mm.npz"]), allow_pickle=False) as npz:
                mm = {k: npz[k] for k in npz.files}
    except KeyError as err:
        raise ReplicaError(f"sample {key}", f"missing member {err.args[0]}") from err
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad sample
        raise ReplicaError(f"sample {key}", f"undecodable ({type(err).__name__}: {err})") from err
    if rate != SAMPLE_RATE:
        raise ReplicaError(f"sample {key}", f"wav is {rate} Hz, schema needs {SAMPLE_RATE}")
    known = {"__key__", "__url__", "__local_path__", "json", "wav", "lmk.npy", "mm.npz", "mp4"}
    sample = Sample(key=key, wav=wav, meta=meta, lmk=lmk, mm=mm, mp4=members.get("mp4"),
                    extra={k: v for k, v in members.items() if k not in known and not k.startswith("__")})
    validate(sample)
    return sample
