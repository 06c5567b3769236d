"""Per-clip surroundings of a synthetic person: lighting, background and camera framing.

Each clip of an identity draws its own: a key light from above and to one side with a colour temperature,
a dimmer fill from the other side, a rim light from behind, ambient; a smooth out-of-focus background (a
gradient with blurred colour blobs and a vignette); and a frontal head-and-shoulders camera whose distance,
field of view, height and sideways offset vary a little, as between recording sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from foundation.camera import Camera


@dataclass(frozen=True)
class Lighting:
    """Directional lights in the world frame (y up, the face looks toward +z), linear RGB intensities.

    Fields:
        ambient: light arriving from everywhere. [3]
        directions: unit vectors from the surface toward each light. [L, 3]
        colours: intensity of each light. [L, 3]
    """

    ambient: np.ndarray
    directions: np.ndarray
    colours: np.ndarray

    def exposed(self, gain: float) -> Lighting:
        """The same lights `gain` times brighter (a camera's exposure)."""
        return Lighting(self.ambient * gain, self.directions, self.colours * gain)

    def as_dict(self) -> dict[str, list]:
        return {"ambient": self.ambient.round(4).tolist(), "directions": self.directions.round(4).tolist(),
                "colours": self.colours.round(4).tolist()}


def _direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector: azimuth 0 toward the camera (+z), positive toward the subject's left (+x)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def _temperature(kelvin: float) -> np.ndarray:
    """Approximate linear RGB of a black body at `kelvin`, normalised to unit luminance."""
    t = kelvin / 100.0
    red = 1.0 if t <= 66 else 1.29 * (t - 60) ** -0.1332
    green = 0.39 * math.log(t) - 0.63 if t <= 66 else 1.13 * (t - 60) ** -0.0755
    blue = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.54 * math.log(t - 10) - 1.19)
    rgb = np.clip([red, green, blue], 0.0, None) ** 2.2
    return rgb / (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """Key (30–60° to a side, 15–45° up, 3000–7000 K), fill from the other side, rim from behind, ambient."""
    side = rng.choice([-1.0, 1.0])
    key = _direction(side * rng.uniform(20, 60), rng.uniform(15, 45))
    fill = _direction(-side * rng.uniform(30, 70), rng.uniform(-5, 25))
    rim = _direction(side * rng.uniform(120, 160), rng.uniform(20, 50))
    key_rgb = _temperature(rng.uniform(3000, 7000)) * rng.uniform(0.75, 1.05)
    fill_rgb = _temperature(rng.uniform(4000, 8000)) * rng.uniform(0.15, 0.4)
    rim_rgb = _temperature(rng.uniform(3500, 8000)) * rng.uniform(0.1, 0.5)
    ambient = _temperature(rng.uniform(4500, 8000)) * rng.uniform(0.15, 0.3)
    return Lighting(ambient=ambient, directions=np.stack([key, fill, rim]), colours=np.stack([key_rgb, fill_rgb, rim_rgb]))


def expose(lighting: Lighting, skin_rgb: np.ndarray, rng: np.random.Generator) -> Lighting:
    """Scale the lights the way a camera's auto-exposure would: the lit face lands at 25–40% linear luminance
    (gain clipped to [0.8, 2]), so dark and light skin both stay readable. skin_rgb: sRGB albedo [3]."""
    luminance = np.array([0.2126, 0.7152, 0.0722])
    skin = float((np.asarray(skin_rgb) ** 2.2) @ luminance)
    frontal = np.clip(lighting.directions[:, 2], 0.3, 1.0)
    light = float((lighting.ambient + (lighting.colours * frontal[:, None]).sum(0)) @ luminance)
    return lighting.exposed(float(np.clip(rng.uniform(0.25, 0.4) / max(skin * light, 1e-6), 0.8, 2.0)))


def sample_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An out-of-focus backdrop: two-colour gradient, blurred colour blobs, vignette. → [H, W, 3] sRGB in [0, 1]"""
    hue = rng.uniform(0, 1, 2)
    saturation = rng.uniform(0.05, 0.45, 2)
    value = rng.uniform(0.2, 0.9, 2)
    colours = np.stack([_hsv(h, s, v) for h, s, v in zip(hue, saturation, value)])
    angle = rng.uniform(0, 2 * np.pi)
    rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
    t = np.clip(0.5 + (cols - 0.5) * np.cos(angle) + (rows - 0.5) * np.sin(angle), 0, 1)[..., None]
    image = colours[0] * (1 - t) + colours[1] * t
    blobs = np.zeros((height, width, 3))
    for _ in range(rng.integers(3, 9)):
        y, x = rng.integers(0, height), rng.integers(0, width)
        blobs[y, x] = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.3, 1.0)) - image[y, x]
    sigma = rng.uniform(0.06, 0.2) * max(height, width)
    spread = ndimage.gaussian_filter(blobs, (sigma, sigma, 0)) * 2 * np.pi * sigma**2 * rng.uniform(0.3, 0.8)
    image = image + spread
    vignette = 1.0 - rng.uniform(0.1, 0.4) * ((rows - 0.5) ** 2 + (cols - 0.5) ** 2)[..., None] * 2
    return np.clip(image * vignette, 0, 1).astype(np.float32)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def sample_framing(rng: np.random.Generator, height: int, width: int, eye_height_m: float = 0.0) -> Camera:
    """A frontal head-and-shoulders camera: 0.30–0.40 m of the subject fill the frame height at a 14–30° fov.

    eye_height_m: world height of the subject's eyes (the template's, about 0 for the default head).
    """
    fov = rng.uniform(14.0, 30.0)
    frame_height = rng.uniform(0.30, 0.40)
    distance = frame_height / (2 * math.tan(math.radians(fov) / 2))
    target = np.array([rng.uniform(-0.01, 0.01), eye_height_m - rng.uniform(0.03, 0.06), 0.0])
    eye = np.array([rng.uniform(-0.04, 0.04) * distance, target[1] + rng.uniform(-0.02, 0.1) * distance, distance])
    return Camera.look_at(tuple(eye), tuple(target), fov_deg=fov, width=width, height=height)
