"""What a synthetic person looks like: a procedural texture atlas painted onto the head model's UV layout.

One identity = one rng draw: skin tone across the range of human skin (Monk Skin Tone swatches), skin
variation and pores, cheek and lip colour, eyebrows, lash lines, iris colour, hair colour and style, beard
shadow, clothing, plus the inner mouth (cavity, teeth, tongue). Everything is painted as a function of the
texel's template position or of MediaPipe landmarks (see `texels`), never of vertex ids, so any head model in
replica's format can be dressed. A face photo can replace the procedural face (`photo`).

The atlas has 5 channels: albedo RGB (sRGB, [0, 1]), specular strength (0 matte … 1 wet eye) and baked
occlusion (1 open … 0 fully occluded: the renderer has no shadows, so the mouth cavity and the eye sockets
carry their darkness here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from foundation.head import HeadModel
from foundation.head.landmarks import LOWER_OUTER_LIP, UPPER_OUTER_LIP
from foundation.world.texels import TexelMap, fill_gutters, fractal_noise, polygon_mask, texel_map, value_noise

ATLAS_SIZE = 1024
"""Default atlas side in texels (the face gets a quarter of it: 512² texels)."""

MONK_SKIN_TONES = np.array([
    [246, 237, 228], [243, 231, 219], [247, 234, 208], [234, 218, 186], [215, 189, 150],
    [160, 126, 86], [130, 92, 67], [96, 65, 52], [58, 49, 42], [41, 36, 32],
]) / 255.0  # fmt: skip
"""The 10 Monk Skin Tone scale swatches (sRGB), lightest to darkest."""

HAIR_COLOURS = {
    "black": ((0.05, 0.04, 0.035), 0.30), "dark brown": ((0.12, 0.08, 0.05), 0.28),
    "brown": ((0.26, 0.16, 0.09), 0.15), "light brown": ((0.42, 0.30, 0.18), 0.08),
    "blonde": ((0.70, 0.56, 0.34), 0.07), "auburn": ((0.45, 0.19, 0.08), 0.04),
    "grey": ((0.52, 0.50, 0.48), 0.05), "white": ((0.78, 0.77, 0.75), 0.03),
}  # fmt: skip
"""Hair colour (sRGB albedo) and how often it is drawn."""

HAIR_STYLES = {"short": 0.45, "medium": 0.2, "long": 0.2, "fringe": 0.07, "buzz": 0.05, "bald": 0.03}
"""Hair style and how often it is drawn; styles differ in hairline and how far the hair comes down."""

IRIS_COLOURS = {
    "dark brown": ((0.20, 0.11, 0.06), 0.45), "brown": ((0.36, 0.21, 0.10), 0.2), "hazel": ((0.42, 0.33, 0.15), 0.1),
    "green": ((0.30, 0.38, 0.22), 0.07), "blue": ((0.30, 0.42, 0.58), 0.12), "grey": ((0.45, 0.48, 0.50), 0.06),
}  # fmt: skip

CLOTHING_COLOURS = (
    (0.08, 0.10, 0.18), (0.06, 0.06, 0.07), (0.88, 0.88, 0.86), (0.45, 0.46, 0.48), (0.20, 0.32, 0.55),
    (0.55, 0.12, 0.12), (0.18, 0.35, 0.22), (0.70, 0.62, 0.48), (0.35, 0.20, 0.35), (0.80, 0.55, 0.20),
    (0.55, 0.70, 0.82), (0.25, 0.25, 0.28),
)  # fmt: skip
"""Shirt colours (sRGB)."""

# MediaPipe landmark ids, as polygons and polylines in drawing order.
_LIPS_OUTER = [*UPPER_OUTER_LIP, *LOWER_OUTER_LIP[-2:0:-1]]
_BROWS = ([46, 53, 52, 65, 55, 107, 66, 105, 63, 70], [276, 283, 282, 295, 285, 336, 296, 334, 293, 300])
_UPPER_LIDS = ([33, 246, 161, 160, 159, 158, 157, 173, 133], [263, 466, 388, 387, 386, 385, 384, 398, 362])
_LOWER_LIDS = ([33, 7, 163, 144, 145, 153, 154, 155, 133], [263, 249, 390, 373, 374, 380, 381, 382, 362])
_NOSTRILS = ([20, 60, 79, 238, 239, 241], [250, 290, 309, 458, 459, 461])
_CHEEKS = (205, 425)
_IRIS_CENTRES = {"eye_r": 468, "eye_l": 473}


@dataclass
class Appearance:
    """One identity's look.

    Fields:
        texture: the atlas: albedo RGB (sRGB), specular, occlusion; all in [0, 1]. [S, S, 5] float32
        skin_rgb: base skin albedo (sRGB). [3]
        traits: JSON-able description (skin tone index, hair colour and style, iris, beard, clothing, photo).
    """

    texture: np.ndarray
    skin_rgb: np.ndarray
    traits: dict = field(default_factory=dict)


def _choose(table: dict, rng: np.random.Generator) -> str:
    names = list(table)
    weights = np.array([v[1] if isinstance(v, tuple) else v for v in table.values()], np.float64)
    return names[rng.choice(len(names), p=weights / weights.sum())]


def _smoothstep(edge0, edge1, value):
    s = np.clip((np.asarray(value, np.float32) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _mix(base: np.ndarray, colour, alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend `colour` ([3] or like `base`) over `base` [..., 3] with per-texel `alpha` [...]."""
    return base * (1.0 - alpha[..., None]) + np.asarray(colour, np.float32) * alpha[..., None]


class _Frame:
    """Head-relative measurements from the template landmarks, so paint scales with any head model."""

    def __init__(self, head: HeadModel, texels: TexelMap):
        template = head.template.cpu().numpy()
        lmk = template[head.landmark_index.cpu().numpy()]
        self.width = float(np.linalg.norm(lmk[454] - lmk[234]))
        self.y_top, self.y_chin = float(lmk[10, 1]), float(lmk[152, 1])
        self.y_eye = float(lmk[[468, 473], 1].mean())
        self.y_nose = float(lmk[2, 1])
        self.mouth = lmk[[13, 14]].mean(0)
        part = head.part.cpu().numpy()
        skull = np.isin(part, [head.part_names.index(n) for n in ("face", "scalp") if n in head.part_names])
        self.centre = np.array([0.0, self.y_eye, float(template[skull, 2].mean())])
        shoulders = part == head.part_names.index("shoulders") if "shoulders" in head.part_names else None
        top = template[shoulders, 1].max() if shoulders is not None and shoulders.any() else self.y_chin - 0.5 * self.width
        self.y_shoulders = float(top)
        offset = texels.position - self.centre
        self.azimuth = np.degrees(np.abs(np.arctan2(offset[..., 0], offset[..., 2])))  # 0 front … 180 back
        self.lmk_px = texels.landmark_px
        self.face_px = float(np.linalg.norm(self.lmk_px[454] - self.lmk_px[234]))


def sample_appearance(head: HeadModel, rng: np.random.Generator, atlas_size: int = ATLAS_SIZE,
                      texels: TexelMap | None = None, skin_rgb: np.ndarray | None = None) -> Appearance:
    """Draw one identity's look from `rng` (same rng state → same atlas) and paint its texture atlas.

    texels: a precomputed `texel_map(head, atlas_size)` (it depends only on the head, so a world reuses it).
    skin_rgb: a given skin albedo (sRGB [3], e.g. measured on a photo) instead of a drawn one.
    """
    texels = texels or texel_map(head, atlas_size)
    frame = _Frame(head, texels)
    size = texels.size
    traits: dict = {}
    tone = float(np.clip(rng.normal(4.5, 2.5), 0.0, 8.5))
    low = int(np.floor(min(tone, 8.999)))
    skin = MONK_SKIN_TONES[low] + (tone - low) * (MONK_SKIN_TONES[low + 1] - MONK_SKIN_TONES[low])
    # Undertone: a little warmer (red) or more olive (yellow-green) than the swatch.
    skin = np.clip(skin * np.array([1.0 + rng.normal(0, 0.03), 1.0 + rng.normal(0, 0.02), 1.0 + rng.normal(0, 0.04)]), 0, 1)
    traits["skin_tone"] = round(tone + 1.0, 2)  # Monk scale is 1–10
    if skin_rgb is not None:
        skin, traits["skin_tone"] = np.asarray(skin_rgb, np.float64), None

    albedo = np.broadcast_to(skin.astype(np.float32), (size, size, 3)).copy()
    specular = np.full((size, size), 0.07, np.float32)
    occlusion = np.ones((size, size), np.float32)
    pos = texels.position

    # Skin: blotchy low-frequency variation in 3D, redder where the blood is (cheeks, nose, lips), pores.
    covered = texels.covered
    blotch = fractal_noise(pos[covered], 0.04, rng)
    pores = value_noise(pos[covered], 0.0007, rng)
    albedo[covered] *= (1.0 + 0.06 * blotch[:, None] * np.array([1.0, 0.8, 0.7], np.float32)) * (1.0 + 0.06 * pores[:, None])
    hair_rgb, eyebrow_rgb = _paint_face(albedo, specular, occlusion, texels, frame, skin, rng, traits)
    _paint_hair(albedo, specular, texels, frame, hair_rgb, rng, traits)
    _paint_clothing(albedo, specular, occlusion, texels, frame, rng, traits)
    _paint_eyes(albedo, specular, occlusion, texels, frame, rng, traits)
    _paint_mouth(albedo, specular, occlusion, texels, frame, rng)
    traits["eyebrows_rgb"] = [round(float(c), 3) for c in eyebrow_rgb]
    texture = np.concatenate([np.clip(albedo, 0, 1), specular[..., None], occlusion[..., None]], -1)
    return Appearance(fill_gutters(texture, texels.covered).astype(np.float32), skin.astype(np.float32), traits)


def _gauss_at(points: np.ndarray, sigma: float, size: int) -> np.ndarray:
    """Sum of isotropic Gaussian blobs (peak 1) at texel points [P, 2]. → [S, S]"""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((size, size), np.float32)
    for x, y in points:
        out = np.maximum(out, np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)))
    return out


def _polyline_mask(points: np.ndarray, width: np.ndarray, size: int) -> np.ndarray:
    """Soft stroke along a polyline with per-point half-width (texels). points [P, 2], width [P] → [S, S]"""
    mask = np.zeros((size, size), np.float32)
    dense = np.linspace(0, len(points) - 1, 20 * len(points))
    xs = np.interp(dense, np.arange(len(points)), points[:, 0])
    ys = np.interp(dense, np.arange(len(points)), points[:, 1])
    ws = np.interp(dense, np.arange(len(points)), width)
    for x, y, w in zip(xs, ys, ws):
        r = int(np.ceil(w + 2))
        r0, r1, c0, c1 = max(int(y) - r, 0), min(int(y) + r + 1, size), max(int(x) - r, 0), min(int(x) + r + 1, size)
        rows, cols = np.mgrid[r0:r1, c0:c1]
        d = np.sqrt((cols - x) ** 2 + (rows - y) ** 2)
        mask[r0:r1, c0:c1] = np.maximum(mask[r0:r1, c0:c1], np.clip(w + 0.5 - d, 0.0, 1.0))
    return mask


def _paint_face(albedo, specular, occlusion, texels: TexelMap, frame: _Frame, skin, rng, traits):
    """Cheeks, lips, eyebrows, lash lines, nostrils, beard shadow. Returns (hair, eyebrow) sRGB colours."""
    size, px, unit = texels.size, frame.lmk_px, frame.face_px
    face = texels.mask("face")
    blush = _gauss_at(px[list(_CHEEKS)], 0.09 * unit, size) * rng.uniform(0.1, 0.35)
    blush += _gauss_at(px[[1, 4]], 0.04 * unit, size) * rng.uniform(0.05, 0.2)  # nose tip
    albedo[:] = _mix(albedo, skin * np.array([1.0, 0.72, 0.72]), blush * face)
    under_eye = _gauss_at(px[[145, 374]] + [0, 0.05 * unit], 0.045 * unit, size) * rng.uniform(0.05, 0.2)
    albedo *= 1.0 - (under_eye * face)[..., None] * np.array([0.5, 0.6, 0.5], np.float32)

    lips = ndimage.gaussian_filter(polygon_mask(px[_LIPS_OUTER], size), 0.006 * unit)
    lip_rgb = skin * np.array([0.82, 0.56, 0.58]) * 0.9 + np.array([0.08, 0.0, 0.01])
    lipstick = rng.random() < 0.12
    if lipstick:
        lip_rgb = np.array([(0.62, 0.08, 0.12), (0.55, 0.18, 0.30), (0.40, 0.10, 0.15)][rng.integers(3)])
    traits["lipstick"] = bool(lipstick)
    albedo[:] = _mix(albedo, lip_rgb, lips * face * rng.uniform(0.75, 1.0))
    specular[:] = np.maximum(specular, 0.35 * lips * face)

    hair_name = _choose(HAIR_COLOURS, rng)
    hair_rgb = np.array(HAIR_COLOURS[hair_name][0]) * rng.uniform(0.85, 1.15)
    traits["hair_colour"] = hair_name
    # Grey or blonde hair often keeps darker brows.
    brow_rgb = hair_rgb if hair_name in ("black", "dark brown", "brown", "auburn") else hair_rgb * rng.uniform(0.45, 0.8)
    thickness = rng.uniform(0.8, 1.5)
    strands = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), (0.6, 2.5))
    strands = np.clip(0.8 + 0.3 * strands / max(strands.std(), 1e-6), 0, 1)
    for brow in _BROWS:
        points = px[brow]
        centre = points.mean(0)
        grown = centre + (points - centre) * np.array([1.0, thickness])
        mask = ndimage.gaussian_filter(polygon_mask(grown, size), 0.006 * unit)
        # Brows thin out toward their outer tail (the first point of the lower edge).
        outer = np.linalg.norm(np.stack(np.mgrid[0:size, 0:size][::-1], -1) - grown[0], axis=-1)
        density = mask * (0.5 + 0.5 * np.clip(outer / (np.linalg.norm(grown[4] - grown[0]) + 1e-6), 0.0, 1.0))
        albedo[:] = _mix(albedo, brow_rgb, np.clip(density * 1.3, 0, 1) * strands * rng.uniform(0.8, 0.95) * face)

    for upper, lower in zip(_UPPER_LIDS, _LOWER_LIDS):
        n = len(upper)
        # Lash lines: heavier at the outer corner (first point), thin at the inner one.
        taper = np.linspace(1.0, 0.4, n) * 0.012 * unit
        albedo[:] = _mix(albedo, (0.03, 0.02, 0.02), _polyline_mask(px[upper], taper, size) * 0.9)
        albedo[:] = _mix(albedo, (0.05, 0.03, 0.03), _polyline_mask(px[lower], 0.5 * taper, size) * 0.45)
        crease = _polyline_mask(px[upper] - [0, 0.05 * unit], np.full(n, 0.03 * unit), size)
        albedo *= 1.0 - 0.12 * ndimage.gaussian_filter(crease, 0.02 * unit)[..., None]
        rim = ndimage.gaussian_filter(_polyline_mask(np.concatenate([px[upper], px[lower][::-1]]), np.full(2 * n, 0.01 * unit), size), 0.004 * unit)
        occlusion *= 1.0 - 0.45 * rim
    for nostril in _NOSTRILS:
        dark = ndimage.gaussian_filter(polygon_mask(px[nostril], size), 0.01 * unit)
        albedo *= 1.0 - 0.7 * dark[..., None]
        occlusion *= 1.0 - 0.6 * dark

    beard = rng.random() < 0.35
    traits["beard_shadow"] = bool(beard)
    if beard:
        pos, width = texels.position, frame.width
        # Upper edge of the beard: under the nose (moustache), down to the mouth corners, up to the sideburns.
        angles, heights = np.array([0.0, 15.0, 35.0, 60.0, 85.0]), np.array([
            frame.y_nose - 0.02 * width, frame.y_nose - 0.05 * width, frame.mouth[1] + 0.02 * width,
            frame.y_eye - 0.3 * width, frame.y_eye - 0.05 * width])
        edge = np.interp(frame.azimuth, angles, heights)
        grows = _smoothstep(edge, edge - 0.06 * width, pos[..., 1]) * _smoothstep(110.0, 85.0, frame.azimuth)
        grows *= _smoothstep(frame.y_chin - 0.4 * width, frame.y_chin - 0.15 * width, pos[..., 1])
        lips_free = 1.0 - np.clip(ndimage.gaussian_filter(polygon_mask(px[_LIPS_OUTER], size), 0.01 * unit) * 2, 0, 1)
        # Stubble noise lives in 3D so its grain is the same in every atlas region (no seams).
        stubble = np.zeros((size, size), np.float32)
        stubble[texels.covered] = np.clip(0.6 + 0.5 * value_noise(pos[texels.covered], 0.0008, rng), 0, 1)
        alpha = grows * stubble * rng.uniform(0.1, 0.22) * np.where(face, lips_free, 1.0) * texels.covered
        albedo[:] = _mix(albedo, np.minimum(hair_rgb, 0.2) * 0.5, alpha)
    return hair_rgb, brow_rgb


def _paint_hair(albedo, specular, texels: TexelMap, frame: _Frame, hair_rgb, rng, traits):
    """Hair over the skull: a hairline as a height per azimuth, strand streaks, a soft irregular edge."""
    style = _choose(HAIR_STYLES, rng)
    traits["hair_style"] = style
    if style == "bald":
        return
    sel = texels.covered
    pos, azimuth, width = texels.position[sel], frame.azimuth[sel], frame.width
    up = lambda k: frame.y_eye + k * width  # noqa: E731 - heights in face widths above the eyes
    front = frame.y_top - {"fringe": rng.uniform(0.2, 0.3), "buzz": 0.02}.get(style, rng.uniform(0.03, 0.12)) * width
    nape = {"short": up(-0.65), "medium": up(-0.9), "long": frame.y_shoulders, "fringe": up(-0.8), "buzz": up(-0.6)}[style]
    # Hairline height at azimuths 0 (front) … 180 (back) degrees: forehead, temples, above the ear, nape.
    angles = np.array([0.0, 35.0, 62.0, 80.0, 100.0, 125.0, 150.0, 180.0])
    heights = np.array([front, front - 0.04 * width, up(0.3), up(0.12), up(0.1), nape + 0.2 * width, nape, nape])
    if style == "long":
        heights[3:6] = [up(0.0), up(-0.6), frame.y_chin]
    line = np.interp(azimuth, angles, heights) + 0.02 * width * fractal_noise(pos, 0.02, rng)
    alpha = _smoothstep(line - 0.008 * width, line + 0.012 * width, pos[:, 1])
    # Long hair hangs behind the neck and shoulders only, never over the chest.
    if style == "long":
        alpha *= np.where(pos[:, 1] < frame.y_chin, _smoothstep(90.0, 120.0, azimuth), 1.0)
    offset = pos - frame.centre
    across = np.arctan2(offset[:, 0], offset[:, 2]) / np.pi * 0.5
    along = np.arctan2(offset[:, 1], np.hypot(offset[:, 0], offset[:, 2])) / np.pi * 0.5
    flow = np.stack([across, 0.05 * along, np.zeros_like(across)], -1)
    streaks = value_noise(flow, 0.002, rng)
    clumps = value_noise(flow * [1.0, 6.0, 1.0], 0.015, rng)
    shade = 0.78 + 0.16 * streaks + 0.14 * clumps
    # Thin hair at the hairline lets skin through.
    opacity = (0.5 if style == "buzz" else 0.97) * (0.75 + 0.25 * _smoothstep(0.0, 0.6, alpha))
    albedo[sel] = _mix(albedo[sel], np.asarray(hair_rgb, np.float32) * shade[:, None], alpha * opacity)
    specular[sel] = specular[sel] * (1 - alpha) + 0.25 * alpha


def _paint_clothing(albedo, specular, occlusion, texels: TexelMap, frame: _Frame, rng, traits):
    """A shirt over the shoulders with a crew, V or collar neckline."""
    pos, width = texels.position, frame.width
    neckline = ["crew", "v", "collar"][rng.integers(3)]
    colour = np.array(CLOTHING_COLOURS[rng.integers(len(CLOTHING_COLOURS))]) * rng.uniform(0.85, 1.1)
    traits["clothing"] = {"neckline": neckline, "rgb": [round(float(c), 3) for c in colour]}
    front = _smoothstep(100.0, 60.0, frame.azimuth)
    dip = {"crew": 0.12, "v": 0.55, "collar": 0.25}[neckline] * width
    centre = np.clip(1.0 - np.abs(pos[..., 0]) / (0.45 * width), 0.0, 1.0)
    shape = centre if neckline == "v" else np.sqrt(centre)
    line = frame.y_shoulders + 0.04 * width - dip * shape * front
    cloth = _smoothstep(line + 0.004, line - 0.004, pos[..., 1]) * texels.covered
    folds = np.zeros(cloth.shape, np.float32)
    folds[cloth > 0] = fractal_noise(pos[cloth > 0] * np.array([1.0, 0.3, 1.0]), 0.05, rng)
    weave = np.zeros(cloth.shape, np.float32)
    weave[cloth > 0] = value_noise(pos[cloth > 0], 0.0008, rng)
    fabric = colour * (1.0 + 0.1 * folds[..., None] + 0.05 * weave[..., None])
    albedo[:] = _mix(albedo, fabric, cloth)
    specular[:] = specular * (1 - cloth) + 0.04 * cloth
    edge = _smoothstep(0.02 * width, 0.0, np.abs(pos[..., 1] - line)) * (pos[..., 1] < line)
    if neckline == "collar":
        albedo[:] = _mix(albedo, colour * 1.1, edge)
    occlusion *= 1.0 - 0.25 * edge
    # The neck under the chin is in the jaw's shadow.
    under_chin = _smoothstep(frame.y_chin + 0.05 * width, frame.y_chin - 0.25 * width, pos[..., 1]) * (1 - cloth)
    occlusion *= 1.0 - 0.15 * under_chin * front


def _paint_eyes(albedo, specular, occlusion, texels: TexelMap, frame: _Frame, rng, traits):
    """Sclera, iris with radial fibres and a dark limbal ring, pupil; eyes are wet (specular) and lid-shadowed."""
    iris_name = _choose(IRIS_COLOURS, rng)
    iris_rgb = np.array(IRIS_COLOURS[iris_name][0]) * rng.uniform(0.85, 1.15)
    traits["iris"] = iris_name
    fibres_seed = rng.integers(1 << 31)
    for name, centre_id in _IRIS_CENTRES.items():
        region = texels.mask(name)
        if not region.any():
            continue
        rows, cols = np.nonzero(region)
        centre = frame.lmk_px[centre_id]
        radius = float(np.linalg.norm(frame.lmk_px[centre_id + 1 : centre_id + 5] - centre, axis=1).mean())
        r = np.hypot(cols - centre[0], rows - centre[1]) / max(radius, 1e-6)
        angle = np.arctan2(rows - centre[1], cols - centre[0])
        fibres = value_noise(np.stack([np.cos(angle) * 0.3, np.sin(angle) * 0.3, r * 0.02], -1), 0.01,
                             np.random.default_rng(fibres_seed))
        sclera = np.array([0.86, 0.83, 0.80]) * (1.0 - 0.12 * _smoothstep(1.8, 3.5, r)[:, None] * np.array([0.0, 0.5, 0.5]))
        iris = iris_rgb * (0.75 + 0.35 * fibres[:, None] + 0.25 * _smoothstep(0.9, 0.5, r)[:, None])
        colour = _mix(sclera, iris, _smoothstep(1.05, 0.95, r))
        colour = _mix(colour, iris_rgb * 0.35, np.exp(-((r - 0.97) / 0.08) ** 2) * 0.7)  # limbal ring
        colour = _mix(colour, (0.015, 0.012, 0.012), _smoothstep(0.42, 0.36, r))  # pupil
        albedo[region] = colour
        specular[region] = 0.9
        # The upper lid shades the top of the eyeball.
        above = (texels.position[region][:, 1] - frame.y_eye) / (0.06 * frame.width)
        occlusion[region] = 0.85 - 0.3 * _smoothstep(-0.2, 0.8, above)


def _paint_mouth(albedo, specular, occlusion, texels: TexelMap, frame: _Frame, rng):
    """Teeth (off-white with gums and gaps), pink tongue, dark-red cavity darkening toward the throat."""
    pos, width = texels.position, frame.width
    depth = np.clip((frame.mouth[2] - pos[..., 2]) / (0.3 * width), 0.0, 1.5)  # 0 at the lips, 1 ≈ molars
    shade = rng.uniform(0.9, 1.0)
    for name, gum_at_top in (("teeth_upper", True), ("teeth_lower", False)):
        region = texels.mask(name)
        if not region.any():
            continue
        y = pos[..., 1]
        lo, hi = y[region].min(), y[region].max()
        t = (y - lo) / max(hi - lo, 1e-6)
        gum = _smoothstep(0.72, 0.85, t if gum_at_top else 1.0 - t)
        gaps = np.abs(np.sin(pos[..., 0] / (0.06 * width) * np.pi))
        tooth = np.array([0.93, 0.89, 0.80]) * shade * (0.8 + 0.2 * _smoothstep(0.0, 0.3, gaps))[..., None]
        colour = _mix(tooth, (0.75, 0.38, 0.40), gum)
        albedo[region] = colour[region]
        specular[region] = 0.35
        occlusion[region] = (0.8 - 0.5 * np.clip(depth, 0, 1))[region]
    region = texels.mask("tongue")
    albedo[region] = np.array([0.78, 0.40, 0.40]) * (1.0 + 0.06 * value_noise(pos[region], 0.004, rng))[:, None]
    specular[region] = 0.3
    occlusion[region] = (0.6 - 0.4 * np.clip(depth, 0, 1))[region]
    region = texels.mask("mouth_cavity")
    albedo[region] = np.array([0.42, 0.12, 0.12])
    specular[region] = 0.15
    occlusion[region] = (0.45 * np.exp(-2.5 * depth))[region]
