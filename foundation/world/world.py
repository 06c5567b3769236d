"""The synthetic talking-head world: made-up people speaking TTS sentences, as dataset samples and person videos.

    world = SynthWorld(SynthConfig(identities=8, clips_per_identity=4, seed=0))
    sample = world.clip(identity=3, clip=0)      # a schema `Sample`: wav, mp4, lmk.npy, mm.npz, json
    take = world.person(seconds=90)              # one person talking for 90 s: frames, audio, parameters

A clip is: sentence(s) → speech (the TTS voice pool, `foundation.tts`) → talking motion (`synthesize_motion`)
→ head parameters → posed mesh (the default head model) → shaded frames (`shading.render_textured`) +
projected landmarks. Every draw comes from an rng seeded by (seed, identity[, clip]), so a clip is reproducible
on its own, on any worker, in any order. `build_world` caches a world per process (a Ray worker builds the
head once); `synth_identity` and `synth_person` are the units of work the cluster fans out.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np
import torch
from pydantic import Field

from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.media import encode_mp4, write_mp4
from datasets.schema import SAMPLE_RATE, Sample
from datasets.shards import ShardInfo, ShardWriter
from foundation.camera import Camera
from foundation.head import FaceParams, HeadModel, PersonParams, default_head_model, project_landmarks, save_params
from foundation.tts import list_voices, synthesize
from foundation.world.appearance import Appearance, sample_appearance
from foundation.world.motion import FPS, synthesize_motion
from foundation.world.photo import photo_appearance
from foundation.world.scene import Lighting, expose, sample_background, sample_framing, sample_lighting
from foundation.world.sentences import make_script
from foundation.world.shading import Topology, render_textured
from foundation.world.texels import TexelMap, texel_map

SOURCE = "synthetic"
LICENSE = "CC0 (synthetic)"
TRAIN_VOICES = ["espeak:en-us", "espeak:en-us+*", "espeak:en-gb*", "piper:*", "flite:kal", "flite:rms", "flite:slt"]
"""Voice patterns for training sets: every engine, most accents."""
HELDOUT_VOICES = ["espeak:en-029*", "espeak:en-us-nyc*", "flite:awb"]
"""Voice patterns for held-out sets: accents and a speaker no `TRAIN_VOICES` pattern matches, on engines
the training set covers (so held-out numbers measure new voices, not a new synthesiser)."""
RENDER_CHUNK = 16
"""Frames rendered per batch (bounds memory at large sizes)."""


class SynthConfig(Section):
    """What the synthetic world generates."""

    size: int = Field(256, ge=32)
    """Output frame width and height in pixels."""
    fps: int = Field(FPS, ge=1)
    """Video frame rate; the motion model runs at 25 fps, so only 25 is supported."""
    clip_seconds: tuple[float, float] = (2.0, 6.0)
    """Range of target clip lengths in seconds (the speech decides the exact length)."""
    identities: int = Field(4, ge=1)
    """Number of made-up people."""
    clips_per_identity: int = Field(2, ge=1)
    """Clips spoken by each person."""
    seed: int = 0
    """Seed of every random draw; the same config gives the same dataset."""
    voices: list[str] = []
    """Voice id patterns (fnmatch, e.g. "espeak:en-us*", "flite:*"); empty means every voice of the pool."""
    voice_order: Literal["random", "cycle"] = "random"
    """How identities get voices: drawn at random (two may share one), or dealt in turn (identity i speaks with
    the i-th matching voice, so a speaker-verification set has one voice per speaker label)."""
    photo_probability: float = Field(0.0, ge=0.0, le=1.0)
    """Chance that an identity's face is textured from one of the world's face photos (when it has any)."""
    video: bool = True
    """Render frames into the `mp4` member; False writes audio, parameters and landmarks only (fast)."""
    supersample: int = Field(2, ge=1, le=4)
    """Anti-aliasing: render at this multiple of `size` and box-filter down."""
    atlas_size: int = Field(1024, ge=128)
    """Side of each identity's texture atlas in texels."""
    shape_sigma: float = Field(0.8, ge=0.0)
    """Standard deviation of the identity (shape) coefficients."""


@dataclass(frozen=True)
class Identity:
    """One made-up person: id, shape coefficients [S], look, voice."""

    id: str
    shape: np.ndarray
    appearance: Appearance
    voice: str


@dataclass(frozen=True)
class Performance:
    """One rendered take: what was said and how, and what the camera saw.

    Fields:
        wav: speech, float32 [T] at 16 kHz.
        params: `mm.npz` arrays (shape [S], expr [F, 52], jaw/neck/rot/trans [F, 3]) + camera keys.
        camera: the camera the frames were rendered with.
        frames: rendered video, uint8 [F, H, W, 3], or None without video.
        lmk: MediaPipe-convention landmarks, float32 [F, 478, 3].
        text, phones: the script and its phone timings (seconds), voice: the voice id.
        lighting: the lights used (JSON-able).
    """

    wav: np.ndarray
    params: dict[str, np.ndarray]
    camera: Camera
    frames: np.ndarray | None
    lmk: np.ndarray
    text: str
    phones: list[tuple[str, float, float]]
    voice: str
    lighting: dict

    @property
    def face_params(self) -> FaceParams:
        """The true per-frame parameters as FaceParams."""
        return FaceParams.from_dict(self.params)

    def first(self, n_frames: int) -> Performance:
        """The take cut to its first `n_frames` frames (audio cut to match; phones past the cut dropped)."""
        if not 1 <= n_frames <= len(self.lmk):
            raise ReplicaError(f"first({n_frames})", f"the take has {len(self.lmk)} frames")
        per_frame = {k: v[:n_frames] if k in ("expr", "jaw", "neck", "rot", "trans") else v
                     for k, v in self.params.items()}
        seconds = n_frames / FPS
        return Performance(wav=self.wav[:round(seconds * SAMPLE_RATE)], params=per_frame, camera=self.camera,
                           frames=None if self.frames is None else self.frames[:n_frames], lmk=self.lmk[:n_frames],
                           text=self.text, phones=[p for p in self.phones if p[1] < seconds], voice=self.voice,
                           lighting=self.lighting)


class SynthWorld:
    """Generates identities, clips and person videos with the default head model and the TTS voice pool.

    cfg: what to generate. photos: face photos (uint8 [H, W, 3]) that identities may be textured from (see
    `cfg.photo_probability`; default: the photos that ship with installed packages). head: the head model
    (default: `default_head_model()`).
    """

    def __init__(self, cfg: SynthConfig | None = None, photos: Sequence[np.ndarray] | None = None,
                 head: HeadModel | None = None):
        self.cfg = cfg or SynthConfig()
        if self.cfg.fps != FPS:
            raise ReplicaError(f"fps={self.cfg.fps}", f"the motion model runs at {FPS} fps only")
        self.head = head if head is not None else default_head_model()
        if photos is None:
            photos = shipped_photos() if self.cfg.photo_probability > 0 else []
        self.photos = list(photos)
        voices = [v.id for v in list_voices()]
        patterns = self.cfg.voices or ["*"]
        self.voices = sorted(v for v in voices if any(fnmatch.fnmatch(v, p) for p in patterns))
        if not self.voices:
            raise ReplicaError(f"voices {patterns}", f"match none of the {len(voices)} voices of the pool")
        self.topology = Topology.of(self.head)
        self.eye_height = float(self.head.template[self.head.landmark_index[[468, 473]]][:, 1].mean())
        self._identity = lru_cache(maxsize=2)(self._make_identity)

    @property
    def n_clips(self) -> int:
        return self.cfg.identities * self.cfg.clips_per_identity

    def texels(self) -> TexelMap:
        if not hasattr(self, "_texels"):
            self._texels = texel_map(self.head, self.cfg.atlas_size)
        return self._texels

    def identity(self, index: int) -> Identity:
        """Identity `index` (deterministic from the seed; the last two are cached)."""
        return self._identity(index)

    def _make_identity(self, index: int) -> Identity:
        rng = np.random.default_rng([self.cfg.seed, index, 0])
        shape = (rng.normal(0.0, 1.0, self.head.n_shape) * self.cfg.shape_sigma).astype(np.float32)
        drawn = int(rng.integers(len(self.voices)))  # drawn either way: the rest of the identity stays the same
        voice = self.voices[index % len(self.voices) if self.cfg.voice_order == "cycle" else drawn]
        look_rng = np.random.default_rng(rng.integers(1 << 62))
        if self.photos and rng.random() < self.cfg.photo_probability:
            photo = self.photos[rng.integers(len(self.photos))]
            appearance = photo_appearance(self.head, photo, look_rng, self.texels())
        else:
            appearance = sample_appearance(self.head, look_rng, texels=self.texels())
        return Identity(f"s{self.cfg.seed}-id{index:04d}", shape, appearance, voice)  # unique across seeds

    def clip(self, identity: int, clip: int) -> Sample:
        """Clip `clip` of identity `identity` as a schema Sample (key `synthetic-s0-id0003-c0001` for seed 0)."""
        person = self.identity(identity)
        rng = np.random.default_rng([self.cfg.seed, identity, 1, clip])
        text = make_script(rng, rng.uniform(*self.cfg.clip_seconds))
        speech = synthesize(text, person.voice)
        take = self._perform(person, speech.wav, speech.phonemes, text, rng, speech.sample_rate)
        mp4 = encode_mp4(take.frames, fps=self.cfg.fps) if take.frames is not None else None
        meta = {"speaker": f"synth-{person.id}", "identity": person.id, "voice": person.voice, "source": SOURCE,
                "license": LICENSE, "fps": self.cfg.fps, "text": text, "phones": [list(p) for p in take.phones],
                "appearance": person.appearance.traits, "lighting": take.lighting}
        return Sample(key=f"{SOURCE}-{person.id}-c{clip:04d}", wav=take.wav, meta=meta, lmk=take.lmk,
                      mm=take.params, mp4=mp4)

    def speech_clip(self, identity: int, key: str, wav16k: np.ndarray, phones, meta: dict) -> Sample:
        """A made-up face (identity `identity`) speaking a real recording: the same clip as `clip`, with the given
        audio and phone timings in place of a TTS sentence (key `synthetic-s0-id0003-<key>`).

        wav16k: float32 [T] real speech at 16 kHz. phones: (symbol, start_s, end_s) from the recording's start, in
        ARPAbet (any case, stress digits allowed) or IPA; the silence and noise marks of HTS labels and
        pocketsphinx (`sil`, `pau`, `sp`, `SIL`, `<sil>`, `+NSN+`, `+SPN+`, ...) close the mouth. key: the
        recording's sample key. meta: the recording's json; its speaker, source, license, text, sex and
        phones_source are kept (the voice is real); the face's made-up identity, look and lighting are added,
        with the face's own source and license. The performance's rng is seeded by (seed, identity, key), so a
        clip is reproducible.
        """
        import zlib

        from datasets.schema import key_part

        wav16k = np.asarray(wav16k, np.float32)
        if wav16k.ndim != 1 or len(wav16k) < SAMPLE_RATE // FPS:
            raise ReplicaError(f"speech {key!r}", f"needs mono 16 kHz audio of at least one frame (got {wav16k.shape})")
        silent = {"sil", "sp", "pau", "spn", "nsn", "<sil>", "<s>", "</s>", "sil_s", "sil_e", "h#"}
        timings = []
        for phone, start, end in phones or []:
            token = str(phone).strip().lower()
            token = "sil" if token in silent or token.startswith(("+", "[", "<")) else token
            timings.append((token, float(start), float(end)))
        if not timings:
            raise ReplicaError(f"speech {key!r}", "has no phone timings to drive the mouth")
        person = self.identity(identity)
        rng = np.random.default_rng([self.cfg.seed, identity, 3, zlib.crc32(key.encode())])
        text = meta.get("text") or ""
        take = self._perform(person, wav16k, timings, text, rng, SAMPLE_RATE)
        mp4 = encode_mp4(take.frames, fps=self.cfg.fps) if take.frames is not None else None
        kept = {k: meta[k] for k in ("speaker", "source", "license", "text", "sex", "source_start_s", "phones_source")
                if meta.get(k)}
        out = {**kept, "identity": person.id, "voice": f"real:{meta.get('speaker', 'unknown')}",
               "face_source": SOURCE, "face_license": LICENSE, "speech_key": key, "fps": self.cfg.fps,
               "phones": [list(p) for p in take.phones], "appearance": person.appearance.traits,
               "lighting": take.lighting}
        name = f"{SOURCE}-{person.id}-{key_part(key)}"
        if len(name) > 80:  # keep keys within the schema's limit and still distinct: cut, then the key's crc
            name = f"{name[:71]}-{zlib.crc32(key.encode()):08x}"
        return Sample(key=name, wav=take.wav, meta=out, lmk=take.lmk, mm=take.params, mp4=mp4)

    def person(self, seconds: float, identity: int = 0) -> Performance:
        """Identity `identity` talking for about `seconds`: sentence after sentence with natural pauses."""
        person = self.identity(identity)
        rng = np.random.default_rng([self.cfg.seed, identity, 2])
        texts, pieces, phones, t = [], [], [], 0.0
        while t < seconds:
            text = make_script(rng, rng.uniform(2.0, 6.0))
            speech = synthesize(text, person.voice)
            wav = _resample_16k(speech.wav, speech.sample_rate)
            pause = np.zeros(int(rng.uniform(0.3, 0.9) * SAMPLE_RATE), np.float32)
            phones += [(p, s + t, e + t) for p, s, e in (speech.phonemes or [])]
            texts.append(text)
            pieces += [wav, pause]
            t += (len(wav) + len(pause)) / SAMPLE_RATE
        return self._perform(person, np.concatenate(pieces), phones, " ".join(texts), rng, SAMPLE_RATE)

    def _perform(self, person: Identity, wav: np.ndarray, phones, text: str, rng: np.random.Generator,
                 sample_rate: int) -> Performance:
        wav = _resample_16k(np.asarray(wav, np.float32), sample_rate)
        motion = synthesize_motion(wav, phones, rng)
        size = self.cfg.size
        camera = sample_framing(rng, size, size, self.eye_height)
        lighting = expose(sample_lighting(rng), person.appearance.skin_rgb, rng)
        background = sample_background(rng, size, size)
        params = {"shape": person.shape, "expr": motion.expr, "jaw": motion.jaw, "neck": motion.neck,
                  "rot": motion.rot, "trans": motion.trans}
        with torch.no_grad():
            verts = self.head(FaceParams.from_dict(params))
        frames = self._render(verts, person.appearance, camera, lighting, background) if self.cfg.video else None
        lmk = project_landmarks(verts, self.head.landmark_index, camera)
        return Performance(wav=wav, params={**params, **camera.as_dict()}, camera=camera, frames=frames, lmk=lmk,
                           text=text,
                           phones=[(str(p), round(float(s), 4), round(float(e), 4)) for p, s, e in phones or []],
                           voice=person.voice, lighting=lighting.as_dict())

    def _render(self, verts: torch.Tensor, appearance: Appearance, camera: Camera, lighting: Lighting,
                background: np.ndarray) -> np.ndarray:
        texture = torch.from_numpy(appearance.texture)
        chunks = [render_textured(verts[i:i + RENDER_CHUNK], self.topology, texture, camera, lighting, background,
                                  supersample=self.cfg.supersample).rgb for i in range(0, len(verts), RENDER_CHUNK)]
        return np.concatenate(chunks)


def write_person(take: Performance, out_url: str, identity: Identity, fps: int = FPS) -> str:
    """Write a person video: `out_url` (H.264 + AAC with the speech) and `<stem>.params.npz` beside it.

    The params file (`foundation.head.save_params`) holds the true FaceParams, the camera and `fps`, with
    extras `lmk` [F, 478, 3] and the strings `voice`, `text`, `identity`, `appearance` (JSON). Returns its URL.
    """
    if take.frames is None:
        raise ReplicaError(out_url, "a person video needs rendered frames (video=True)")
    if not out_url.endswith(".mp4"):
        raise ReplicaError(out_url, "person video must be an .mp4")
    params_url = out_url[: -len(".mp4")] + ".params.npz"
    extras = {"lmk": take.lmk, "voice": np.asarray(take.voice), "text": np.asarray(take.text),
              "identity": np.asarray(identity.id), "appearance": np.asarray(json.dumps(identity.appearance.traits))}
    write_mp4(out_url, take.frames, fps=fps, audio=take.wav, sample_rate=SAMPLE_RATE)
    save_params(params_url, PersonParams(FaceParams.from_dict(take.params), take.camera, fps, extras))
    return params_url


def shipped_photos() -> list[np.ndarray]:
    """Face photos that ship with installed packages (scikit-image's astronaut portrait)."""
    import skimage.data

    return [skimage.data.astronaut()]


@functools.lru_cache(maxsize=2)
def build_world(cfg_json: str) -> SynthWorld:
    """The world of a config, as JSON (cached per process, so a Ray worker builds the head and atlas once)."""
    return SynthWorld(SynthConfig.model_validate_json(cfg_json))


@dataclass
class IdentityResult:
    """What one identity's task wrote."""

    identity: str
    voice: str
    shards: list[ShardInfo]
    clips: int
    seconds: float


def synth_identity(index: int, cfg_json: str, out: str) -> IdentityResult:
    """Render all clips of identity `index` into shards `<out>/<identity id>-NNNNNN.tar` (one unit of work)."""
    world = build_world(cfg_json)
    person = world.identity(index)
    seconds = 0.0
    with ShardWriter(out, prefix=person.id, max_count=10_000) as writer:
        for clip in range(world.cfg.clips_per_identity):
            sample = world.clip(index, clip)
            seconds += sample.duration_s
            writer.write(sample)
    return IdentityResult(person.id, person.voice, writer.shards, world.cfg.clips_per_identity, seconds)


def fingerprint(cfg: SynthConfig) -> str:
    """What a synthetic dataset depends on: its config and the code's version of the world."""
    payload = json.dumps({"config": cfg.model_dump(mode="json"), "world": 1}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def short_take(n_frames: int, size: int = 64, seed: int = 0) -> tuple[Performance, Identity]:
    """A few seconds of one person for tests, benchmarks and quick looks: identity 0 of a small world (`size`²
    frames, a 256² atlas, flite voices, no anti-aliasing) talking, cut to its first `n_frames` frames."""
    cfg = SynthConfig(size=size, supersample=1, atlas_size=256, voices=["flite:*"], seed=seed, photo_probability=0.0)
    world = build_world(cfg.model_dump_json())
    return world.person(n_frames / FPS + 0.5).first(n_frames), world.identity(0)


def synth_person(seconds: float, out: str, cfg: SynthConfig | None = None, identity: int = 0) -> dict:
    """Render identity `identity` of `cfg`'s world talking for about `seconds` to `out` (.mp4 with the speech)
    and `<stem>.params.npz` beside it; returns a summary (paths, frames, seconds, voice, identity)."""
    cfg = cfg or SynthConfig()
    cfg = SynthConfig.model_validate({**cfg.model_dump(), "identities": max(identity + 1, cfg.identities)})
    world = build_world(cfg.model_dump_json())
    started = time.perf_counter()
    take = world.person(seconds, identity)
    person = world.identity(identity)
    params_url = write_person(take, out, person, fps=cfg.fps)
    return {"video": out, "params": params_url, "frames": len(take.lmk), "seconds": round(len(take.wav) / SAMPLE_RATE, 2),
            "voice": take.voice, "identity": person.id, "seconds_taken": round(time.perf_counter() - started, 1)}


def _resample_16k(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Speech at the schema's 16 kHz (engines in the pool already deliver 16 kHz; others are resampled)."""
    if sample_rate == SAMPLE_RATE:
        return np.asarray(wav, np.float32)
    from scipy.signal import resample_poly

    gcd = np.gcd(SAMPLE_RATE, sample_rate)
    return resample_poly(wav, SAMPLE_RATE // gcd, sample_rate // gcd).astype(np.float32)
