"""A tiny person from the synthetic world for avatar tests (`foundation.world.short_take`), cached per process."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foundation.camera import Camera
from foundation.head import FaceParams
from foundation.world import short_take, write_person as write_take
from foundation.world.world import Identity, Performance


@dataclass
class Person:
    """frames uint8 [F, H, W, 3]; params for the F frames; one static camera; audio float32 [T] at 16 kHz."""

    frames: np.ndarray
    params: FaceParams
    camera: Camera
    audio: np.ndarray
    take: Performance
    identity: Identity


@functools.cache
def make_person(n_frames: int = 40, size: int = 64, seed: int = 0) -> Person:
    """The first `n_frames` frames (25 fps) of a made-up person talking, at `size`² (shared: nobody mutates it)."""
    take, identity = short_take(n_frames, size, seed)
    return Person(take.frames, take.face_params, take.camera, take.wav, take, identity)


def write_person(folder: Path, person: Person) -> tuple[Path, Path]:
    """Write `person.mp4` (H.264 + AAC) and `person.params.npz` the way `replica data synth-person` does."""
    video = folder / "person.mp4"
    return video, Path(write_take(person.take, str(video), person.identity))
