"""A tiny replica bundle for rendering tests, built from a synthetic person's *true* parameters.

`replica create` would track the person and fine-tune a trained animator; tests of the render pipeline and
the server need a complete, verifiable bundle quickly, so this packages the same artifacts directly: the true
params as `track/params`, a quickly trained 64² avatar with a briefly trained refiner, an untrained tiny
animator whose output heads are randomised (so its output moves with the audio and chunked-vs-whole checks
are not trivially constant), a fixed espeak voice, typical idle statistics, and "source footage": the person
pasted into a larger portrait frame with its crop boxes, for rendering composited back into it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from datasets import media, storage
from foundation.animation.model import Animator, AnimatorConfig
from foundation.audio.encoder import AudioEncoder, AudioEncoderConfig
from foundation.audio.features import FeatureConfig
from foundation.head import PersonParams, save_params
from foundation.models import animator_export, save_export
from personalize.bundle import StepRecord, write_manifest, write_step
from personalize.idle import IdleStats
from render.avatar import AvatarConfig
from render.fit import fit_avatar, save_fit
from render.refine import RefineConfig
from tests.render.person import make_person

VOICE = "espeak:en-us+m3"
AVATAR = AvatarConfig(image_size=64, sh_degree=1, iterations=60, densify_from=20, densify_until=50, densify_every=15,
                      max_gaussians=4000, backend="torch", holdout_fraction=0.1)
# kept whatever it scores: the pipeline and server tests exercise the refiner's chunk-to-chunk state
REFINE = RefineConfig(channels=8, levels=2, disc_channels=8, iterations=8, batch_size=2, keep="always")


def tiny_animator(seed: int = 0) -> tuple[Animator, AudioEncoder]:
    """An untrained tiny encoder + animator (eval mode) starting at the person's mean face, heads randomised."""
    torch.manual_seed(seed)
    encoder = AudioEncoder(AudioEncoderConfig(dim=32, layers=1, heads=2, embed_dim=16)).eval()
    animator = Animator(AnimatorConfig(latent_dim=32, dim=32, layers=1, heads=2)).eval()
    params = make_person().params
    animator.init_mean({"expr": params.expr.mean(0), "jaw": params.jaw.mean(0), "neck": params.neck.mean(0),
                        "rot": params.rot.mean(0)})
    with torch.no_grad():
        for head, std in ((animator.expr, 0.05), (animator.pose["jaw"], 0.02), (animator.pose["neck"], 0.002),
                          (animator.pose["rot"], 0.002)):
            head.weight.normal_(0.0, std)
    return animator, encoder


SOURCE_SIZE, SOURCE_BOX = (96, 128), (16, 40, 64)
"""The tiny replica's "source video": a 96×128 portrait frame with the 64² person at x 16, y 40."""


def write_source(bundle: str) -> tuple[str, dict[str, str]]:
    """The footage the tiny replica was "made from" (the person pasted into a larger portrait frame, as a phone
    would film them) and its ingest artifacts: crop boxes and the report. Returns (video URL, outputs)."""
    person = make_person()
    (width, height), (x0, y0, side) = SOURCE_SIZE, SOURCE_BOX
    frames = np.empty((len(person.frames), height, width, 3), np.uint8)
    frames[:] = np.linspace(40, 200, height, dtype=np.uint8)[None, :, None, None]  # a wall behind them
    frames[:, y0:y0 + side, x0:x0 + side] = person.frames
    video = storage.join(bundle, "source", "person.mp4")
    media.write_mp4(video, frames, fps=25.0, audio=person.audio, crf=12)
    buffer = io.BytesIO()
    np.savez(buffer, boxes=np.tile(np.array(SOURCE_BOX, np.float32), (len(frames), 1)))
    storage.write_bytes(storage.join(bundle, "ingest/face.npz"), buffer.getvalue())
    storage.write_json(storage.join(bundle, "ingest/report.json"), {"source_size": list(SOURCE_SIZE)})
    return video, {"face": "ingest/face.npz", "report": "ingest/report.json"}


def build_tiny_replica(bundle: str) -> str:
    """Write a complete replica bundle at `bundle` (any storage URL); returns it."""
    person = make_person()
    records = []

    def step(name: str, outputs: dict[str, str], metrics: dict | None = None) -> None:
        record = StepRecord(name, "tiny-test-replica", outputs, {}, 0.0, metrics or {})
        write_step(bundle, record)
        records.append(record)

    video, ingest = write_source(bundle)
    step("ingest", ingest)
    save_params(storage.join(bundle, "track/params.npz"), PersonParams(person.params, person.camera, 25.0))
    step("track", {"params": "track/params.npz"})
    storage.write_json(storage.join(bundle, "voice/voice.json"), {"voice": VOICE, "tempo": 1.0, "semitones": 0.0})
    step("voice", {"voice": "voice/voice.json"})
    animator, encoder = tiny_animator()
    save_export(animator_export(animator, encoder, FeatureConfig(), init_from="untrained"),
                storage.join(bundle, "finetune/animator.pt"))
    # 40 frames show no blink, so a fit would say "never blinks": keep the typical adult's statistics
    storage.write_json(storage.join(bundle, "finetune/idle.json"), IdleStats.default().to_json())
    step("finetune", {"animator": "finetune/animator.pt", "idle": "finetune/idle.json"})
    fit = fit_avatar(person.frames, person.params, person.camera, AVATAR, REFINE, progress=False)
    save_fit(fit, storage.join(bundle, "avatar/avatar.pt"))
    step("avatar", {"avatar": "avatar/avatar.pt"}, fit.quality.get("heldout", {}))
    write_manifest(bundle, storage.absolute(video), "0" * 64, records, {"avatar": AVATAR.model_dump(mode="json")})
    return bundle


def person_audio(seconds: float) -> np.ndarray:
    """`seconds` of the tiny person's own speech (looped), float32 at 16 kHz."""
    wav = make_person().audio
    n = int(seconds * 16000)
    return np.resize(wav, n).astype(np.float32)


def cached_replica(cache: Path) -> str:
    """The tiny replica under `cache` (built once; rebuilt if partial)."""
    bundle = str(cache / "tiny-replica")
    if not (cache / "tiny-replica" / "replica.json").exists():
        build_tiny_replica(bundle)
    return bundle
