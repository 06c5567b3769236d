"""`replica data synth` / `synth-person`: the synthetic talking-head world on Ray.

The world (`datasets.synth.world`) is parameterised by a head model and a voice pool; this driver supplies
the shipped ones (`foundation.head.default_head_model`, `foundation.tts`) and the shipped face photo
(scikit-image's astronaut), fans one Ray task out per identity (its clips share one texture atlas), each
writing its own shards under a distinct prefix, and publishes the manifest last. A re-run with the same
config finds the manifest's `inputs` fingerprint unchanged and returns at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from rich.console import Console

from cluster.fanout import map_with_progress
from cluster.runtime import RuntimeConfig
from datasets import storage
from datasets.errors import ReplicaError
from datasets.shards import MANIFEST, ShardInfo, ShardWriter, read_manifest, write_manifest
from datasets.synth.world import SynthConfig, SynthWorld, write_person
from foundation.head import FaceParams, HeadModel, default_head_model
from foundation.tts import list_voices, synthesize


class PosedHead:
    """`HeadModel` seen as the world's `HeadLike`: the same buffers, posed from `mm.npz` arrays."""

    def __init__(self, model: HeadModel):
        self.model = model
        self.template, self.faces, self.verts_uvs = model.template, model.faces, model.verts_uvs
        self.faces_uvs, self.part, self.part_names = model.faces_uvs, model.part, model.part_names
        self.landmark_index, self.n_shape = model.landmark_index, model.n_shape

    def pose(self, params: Mapping[str, np.ndarray]) -> torch.Tensor:
        """Posed vertices [F, V, 3] (metres) of parameters in the `mm.npz` layout."""
        return self.model(FaceParams.from_dict(params))


def _speak(text: str, voice: str):
    return synthesize(text, voice)


def shipped_photos() -> list[np.ndarray]:
    """Face photos that ship with installed packages (scikit-image's astronaut portrait)."""
    import skimage.data

    return [skimage.data.astronaut()]


@functools.lru_cache(maxsize=2)
def build_world(cfg_json: str) -> SynthWorld:
    """The world of a config (cached per process, so a Ray worker builds the head once)."""
    cfg = SynthConfig.model_validate_json(cfg_json)
    photos = shipped_photos() if cfg.photo_probability > 0 else []
    return SynthWorld(PosedHead(default_head_model()), _speak, [v.id for v in list_voices()], cfg, photos)


@dataclass
class IdentityResult:
    """What one identity's task wrote."""

    identity: str
    voice: str
    shards: list[ShardInfo]
    clips: int
    seconds: float


def synth_identity(index: int, cfg_json: str, out: str) -> IdentityResult:
    """Render all clips of identity `index` into shards `<out>/id<index>-NNNNNN.tar` (one Ray task)."""
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
    return hashlib.sha256(json.dumps({"config": cfg.model_dump(mode="json"), "world": 1}, sort_keys=True).encode()).hexdigest()[:16]


def synth_dataset(cfg: SynthConfig, out: str, runtime: RuntimeConfig | None = None, console: Console | None = None,
                  show_progress: bool = True) -> dict:
    """Generate the synthetic dataset of `cfg` into `out` (one Ray task per identity); return the manifest info."""
    out = storage.absolute(out)  # Ray workers need not share the driver's working directory
    inputs = fingerprint(cfg)
    manifest_url = storage.join(out, MANIFEST)
    if storage.exists(manifest_url):
        previous = read_manifest(manifest_url).info
        if previous.get("inputs") == inputs:
            return {**previous, "skipped": True}
    started = time.perf_counter()
    task = functools.partial(synth_identity, cfg_json=cfg.model_dump_json(), out=out)
    results, failures = map_with_progress(task, list(range(cfg.identities)), "synth", runtime=runtime,
                                          console=console, show_progress=show_progress)
    if failures:
        raise ReplicaError(out, f"{len(failures)} of {cfg.identities} identities failed; first: {failures[0].error}")
    done = [r for r in results if r is not None]
    info = {
        "inputs": inputs, "config": cfg.model_dump(mode="json"), "source": "synthetic",
        "speakers": [f"synth-{r.identity}" for r in done], "identities": len(done),
        "voices": sorted({r.voice for r in done}), "clips": sum(r.clips for r in done),
        "hours": round(sum(r.seconds for r in done) / 3600, 4), "seconds_taken": round(time.perf_counter() - started, 1),
    }
    write_manifest(out, [s for r in done for s in r.shards], info=info)
    return info


def synth_person(seconds: float, out: str, cfg: SynthConfig | None = None, identity: int = 0) -> dict:
    """Render identity `identity` of `cfg`'s world talking for about `seconds` to `out` (.mp4 with the speech)
    and `<stem>.params.npz` beside it; returns a summary (paths, frames, seconds, voice, identity)."""
    cfg = (cfg or SynthConfig()).model_copy(update={"identities": max(identity + 1, (cfg or SynthConfig()).identities)})
    world = build_world(cfg.model_dump_json())
    started = time.perf_counter()
    take = world.person(seconds, identity)
    person = world.identity(identity)
    params_url = write_person(take, out, person, fps=cfg.fps)
    return {"video": out, "params": params_url, "frames": len(take.lmk), "seconds": round(len(take.wav) / 16000, 2),
            "voice": take.voice, "identity": person.id, "seconds_taken": round(time.perf_counter() - started, 1)}
