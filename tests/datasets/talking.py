"""A real face that moves a little: scikit-image's astronaut photo, shifted and scaled per frame."""

import numpy as np
from skimage import data, transform


def astronaut_frames(count: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """uint8 [count, size, size, 3] RGB frames of the astronaut's head with slight sway and zoom."""
    photo = data.astronaut()[:320, 96:416]  # head and shoulders (the photo is 512²)
    rng = np.random.default_rng(seed)
    frames = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        scale = 1.0 + 0.03 * np.sin(i / 7.0)
        shift = (4.0 * np.sin(i / 5.0) + rng.normal(0, 0.3), 3.0 * np.cos(i / 6.0))
        warp = transform.SimilarityTransform(scale=scale, translation=shift)
        moved = transform.warp(photo, warp.inverse, mode="edge")
        frames[i] = (transform.resize(moved, (size, size), anti_aliasing=True) * 255).astype(np.uint8)
    return frames
