"""The avatar's media boundary: read a person (video + per-frame parameters), write rendered mp4s and sheets.

A person is what `replica data synth-person` (or tracking) produces: `person.mp4` and `person.params.npz`
(read with `foundation.head.load_params`: FaceParams, the camera at the video's own size, fps). Frames are
read at the avatar's image size, and the camera is scaled to match. Rendering writes H.264 + AAC through
`datasets.media`, with the original audio.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import Tensor

from datasets import storage
from datasets.errors import ReplicaError
from datasets.media import read_audio, read_video, write_mp4
from foundation.camera import Camera
from foundation.head import FaceParams, HeadModel, load_params
from render.avatar import Avatar, posed_vertices
from render.refine import refine_frames

CHUNK_FRAMES = 32
"""Frames rendered at once when writing a video (bounds memory; the refiner carries across chunks)."""


def scaled_camera(camera: Camera, width: int, height: int) -> Camera:
    """The same camera imaging `width`×`height` pixels (intrinsics scaled per axis)."""
    scale = torch.tensor([[width / camera.width], [height / camera.height], [1.0]])
    return Camera(camera.viewmat, camera.K * scale, width, height)


def read_person(video_url: str, params_url: str, image_size: int) -> tuple[np.ndarray, FaceParams, Camera, float]:
    """Frames, parameters, camera and fps of one person, validated against each other.

    Args:
        video_url: the person's video (any container FFmpeg reads).
        params_url: the matching params .npz (one row per video frame, with the camera).
        image_size: frames are scaled so their longer side has this many pixels.
    Returns:
        frames uint8 [F, H, W, 3]; FaceParams of F frames; the camera at the frames' size; fps.
    """
    person = load_params(params_url, require_camera=True)
    params, camera, fps = person.params, person.camera, person.fps
    frames = read_video(video_url, fps=fps, size=image_size)
    if params.n_frames != len(frames):
        raise ReplicaError(params_url, f"{params.n_frames} frames of parameters for {len(frames)} video frames in "
                           f"{video_url} at {fps:g} fps")
    return frames, params, scaled_camera(camera, frames.shape[2], frames.shape[1]), fps


def to_uint8(images: Tensor) -> np.ndarray:
    """Float images in [0, 1] → uint8 NumPy. [..., H, W, 3]"""
    return (images.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def render_video(url: str, avatar: Avatar, params: FaceParams, camera: Camera | None = None, *,
                 audio_url: str | None = None, fps: float = 25.0, head: HeadModel | None = None,
                 backend: str = "auto", refine: bool = True, sample_rate: int = 16_000) -> int:
    """Render the avatar for every frame of `params` and write an mp4 (H.264, + AAC from `audio_url`).

    Args:
        url: where the mp4 goes (any storage URL).
        avatar: a trained avatar.
        params: FaceParams of F frames.
        camera: the camera (default: the avatar's training camera).
        audio_url: a video or audio file whose first audio track is muxed in (padded or cut to F / fps).
        fps: frame rate of the output.
        head: the head model of the params (default: `default_head_model()`).
        backend: `render.raster` backend.
        refine: apply the avatar's refiner when it has one.
        sample_rate: audio sample rate in the output, Hz.
    Returns:
        the number of frames written.
    """
    camera = camera if camera is not None else avatar.camera
    if camera is None:
        raise ReplicaError("render_video", "no camera given and the avatar has none")
    audio = read_audio(audio_url, sample_rate) if audio_url else None
    verts = posed_vertices(avatar, params, head)
    chunks, previous = [], None
    with torch.no_grad():
        for start in range(0, verts.shape[0], CHUNK_FRAMES):
            splats = torch.stack([avatar.splat(v, camera, backend)[0] for v in verts[start:start + CHUNK_FRAMES]])
            if refine and avatar.refiner is not None:
                splats = refine_frames(avatar.refiner, splats, previous)
                previous = splats[-1]
            chunks.append(to_uint8(splats))
    frames = np.concatenate(chunks)
    write_mp4(url, frames, fps=fps, audio=audio, sample_rate=sample_rate)
    return len(frames)


def side_by_side(rows: list[list[np.ndarray]], scale: int = 1) -> np.ndarray:
    """A sheet of images: each row is a list of uint8 [H, W, 3] images placed left to right. uint8 [H', W', 3]

    `scale` repeats pixels (nearest neighbour) so tiny renders stay visible.
    """
    sheet = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    return sheet.repeat(scale, axis=0).repeat(scale, axis=1)


def write_png(url: str, image: np.ndarray) -> None:
    """Write a uint8 [H, W, 3] image as PNG to any storage URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    storage.write_bytes(url, buffer.getvalue())
