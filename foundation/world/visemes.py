"""Phones → mouth shapes: the viseme table and Cohen–Massaro coarticulation.

Each phone maps to one or two viseme classes (diphthongs and affricates glide between two);
each class has a target jaw angle, target mouth blendshape weights and a dominance: how strongly
it pulls the mouth towards its target against its neighbours. Bilabials and labiodentals must
reach their closure, so they dominate; h/k/g barely constrain the lips, so they borrow their
neighbours' shapes. The mouth at time t is the dominance-weighted mean of nearby targets, with
dominance decaying exponentially with distance from each keyframe (Cohen & Massaro 1993), which
makes the motion smooth and anticipate upcoming phones. Silence keyframes close the mouth.

Phone symbols understood: IPA (piper, espeak-ng) and CMU ARPAbet (flite), stress digits ignored.
"""

from __future__ import annotations

import numpy as np

from datasets.schema import EXPRESSION_NAMES, expression_indices

# class: (jaw angle in radians, {blendshape or its Left/Right stem: weight}, dominance)
_CLASSES: dict[str, tuple[float, dict[str, float], float]] = {
    "silence": (0.0, {}, 1.5),
    "bilabial": (0.01, {"mouthClose": 0.6, "mouthPress": 0.45, "mouthRollLower": 0.15, "mouthRollUpper": 0.1}, 5.0),
    "labiodental": (0.04, {"mouthRollLower": 0.55, "mouthUpperUp": 0.25, "mouthClose": 0.15}, 3.5),
    "dental": (0.08, {"tongueOut": 0.35, "mouthStretch": 0.1}, 2.0),
    "lateral": (0.12, {"tongueOut": 0.08, "mouthLowerDown": 0.1}, 1.0),
    "alveolar": (0.06, {"mouthStretch": 0.1}, 1.0),
    "sibilant": (0.04, {"mouthStretch": 0.25, "mouthSmile": 0.1}, 1.6),
    "postalveolar": (0.06, {"mouthFunnel": 0.45, "mouthPucker": 0.25, "mouthShrugUpper": 0.2}, 2.0),
    "velar": (0.12, {}, 0.5),
    "rhotic": (0.08, {"mouthPucker": 0.3, "mouthFunnel": 0.2}, 1.2),
    "round_glide": (0.04, {"mouthPucker": 0.7, "mouthFunnel": 0.3}, 2.5),
    "open": (0.30, {"mouthLowerDown": 0.35, "mouthStretch": 0.05}, 1.0),
    "mid": (0.18, {"mouthLowerDown": 0.15}, 1.0),
    "spread": (0.10, {"mouthStretch": 0.3, "mouthSmile": 0.2}, 1.2),
    "round_close": (0.08, {"mouthPucker": 0.65, "mouthFunnel": 0.3}, 1.5),
    "round_mid": (0.20, {"mouthFunnel": 0.6, "mouthPucker": 0.3}, 1.3),
}
VISEMES: tuple[str, ...] = tuple(_CLASSES)
"""Viseme class names; a keyframe's class is an index into this tuple."""

_JAW = np.array([jaw for jaw, _, _ in _CLASSES.values()], np.float32)  # [V] radians
_DOMINANCE = np.array([dom for _, _, dom in _CLASSES.values()], np.float32)  # [V]
_SHAPES = np.zeros((len(VISEMES), len(EXPRESSION_NAMES)), np.float32)  # [V, 52]
for _row, (_, _weights, _) in enumerate(_CLASSES.values()):
    for _name, _weight in _weights.items():
        _SHAPES[_row, expression_indices(_name)] = _weight
_VOWELS = {VISEMES.index(v) for v in ("open", "mid", "spread", "round_close", "round_mid")}

_ARPABET = {
    **dict.fromkeys(["p", "b", "m", "em"], ("bilabial",)),
    **dict.fromkeys(["f", "v"], ("labiodental",)),
    **dict.fromkeys(["th", "dh"], ("dental",)),
    **dict.fromkeys(["l", "el"], ("lateral",)),
    **dict.fromkeys(["t", "d", "n", "en", "dx", "nx"], ("alveolar",)),
    **dict.fromkeys(["s", "z"], ("sibilant",)),
    **dict.fromkeys(["sh", "zh"], ("postalveolar",)),
    **dict.fromkeys(["ch", "jh"], ("alveolar", "postalveolar")),
    **dict.fromkeys(["k", "g", "ng", "hh", "y"], ("velar",)),
    **dict.fromkeys(["r", "er", "axr"], ("rhotic",)),
    "w": ("round_glide",),
    **dict.fromkeys(["aa", "ae"], ("open",)),
    **dict.fromkeys(["ah", "ax", "eh"], ("mid",)),
    **dict.fromkeys(["ih", "iy", "ix"], ("spread",)),
    **dict.fromkeys(["uh", "uw"], ("round_close",)),
    "ao": ("round_mid",),
    "ey": ("mid", "spread"),
    "ay": ("open", "spread"),
    "aw": ("open", "round_close"),
    "ow": ("round_mid", "round_close"),
    "oy": ("round_mid", "spread"),
    **dict.fromkeys(["pau", "sil", "sp"], ("silence",)),
}
_IPA = {
    **dict.fromkeys("pbmɱ", "bilabial"),
    **dict.fromkeys("fv", "labiodental"),
    **dict.fromkeys("θð", "dental"),
    **dict.fromkeys("lɫɬʎ", "lateral"),
    **dict.fromkeys("tdnɾɗ", "alveolar"),
    **dict.fromkeys("sz", "sibilant"),
    **dict.fromkeys("ʃʒçɕʑ", "postalveolar"),
    **dict.fromkeys("kɡgŋhxɣjʔqɲ", "velar"),
    **dict.fromkeys("ɹrɻʁɚɝ", "rhotic"),
    **dict.fromkeys("wʍ", "round_glide"),
    **dict.fromkeys("aɑæɐɒ", "open"),
    **dict.fromkeys("ɛʌəɜɘɵᵻ", "mid"),
    **dict.fromkeys("iɪeɨy", "spread"),
    **dict.fromkeys("uʊɯʉ", "round_close"),
    **dict.fromkeys("oɔøœ", "round_mid"),
}
_REACH_S = 0.6  # beyond this distance a keyframe's dominance is negligible (< e^-6)


def phone_visemes(phone: str) -> tuple[int, ...]:
    """Viseme class indices (one, or two for a glide such as a diphthong) for one phone symbol.

    Unknown symbols map to the neutral, low-dominance velar class so they follow their neighbours.
    """
    token = phone.strip().lower().rstrip("012")
    names = _ARPABET.get(token)
    if names is None:
        found = [_IPA[char] for char in token if char in _IPA]
        names = tuple(n for i, n in enumerate(found) if i == 0 or n != found[i - 1])[:2] or ("velar",)
    return tuple(VISEMES.index(n) for n in names)


def is_vowel(viseme: int) -> bool:
    """Whether viseme class index `viseme` is a vowel class (the jaw opens for it)."""
    return viseme in _VOWELS


def keyframes(phonemes: list[tuple[str, float, float]], duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phone timings → viseme keyframes, silence keyframes filling every gap between phones.

    phonemes: (phone, start_s, end_s) in time order. duration_s: length of the clip (seconds).
    Returns times [K] (keyframe centres, seconds), spans [K] (seconds each keyframe covers) and
    classes [K] (int indices into `VISEMES`), sorted by time. Silence keyframes also sit just
    outside the clip so the mouth rests closed at both ends.
    """
    times, spans, classes = [], [], []
    silence = VISEMES.index("silence")

    def add_silence(start: float, end: float) -> None:
        count = max(1, round((end - start) / 0.08))
        span = (end - start) / count
        times.extend(start + span * (np.arange(count) + 0.5))
        spans.extend([span] * count)
        classes.extend([silence] * count)

    add_silence(-0.2, 0.0)
    previous_end = 0.0
    for phone, start, end in phonemes:
        if start - previous_end > 0.03:
            add_silence(previous_end, start)
        parts = phone_visemes(phone)
        span = (end - start) / len(parts)
        for i, viseme in enumerate(parts):
            times.append(start + span * (i + 0.5))
            spans.append(span)
            classes.append(viseme)
        previous_end = max(previous_end, end)
    add_silence(previous_end, max(duration_s, previous_end + 0.03))
    add_silence(max(duration_s, previous_end + 0.03), max(duration_s, previous_end) + 0.2)
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], np.asarray(spans)[order], np.asarray(classes, np.int64)[order]


def coarticulate(
    times: np.ndarray, spans: np.ndarray, classes: np.ndarray, frame_times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Blend keyframe targets into per-frame mouth parameters with dominance functions.

    times, spans: [K] keyframe centres and spans (seconds), sorted. classes: [K] viseme indices.
    frame_times: [F] seconds. Returns jaw [F] (radians, opening) and mouth shapes [F, 52].
    Frames are processed in blocks against only the keyframes within reach, so memory stays
    bounded for long clips.
    """
    # Strong (consonant) keyframes act in a short window around their centre; vowels spread.
    dominance = _DOMINANCE[classes]
    decay_s = np.where(dominance > 1.4, 0.3, 0.6) * spans + 0.02
    jaw = np.zeros(len(frame_times), np.float32)
    shapes = np.zeros((len(frame_times), len(EXPRESSION_NAMES)), np.float32)
    block = 256
    for first in range(0, len(frame_times), block):
        t = frame_times[first : first + block]
        lo, hi = np.searchsorted(times, [t[0] - _REACH_S, t[-1] + _REACH_S])
        lo, hi = max(0, lo - 1), min(len(times), hi + 1)
        weight = dominance[lo:hi] * np.exp(-np.abs(t[:, None] - times[lo:hi]) / decay_s[lo:hi])  # [B, k]
        weight /= weight.sum(axis=1, keepdims=True) + 1e-12
        jaw[first : first + block] = weight @ _JAW[classes[lo:hi]]
        shapes[first : first + block] = weight @ _SHAPES[classes[lo:hi]]
    return jaw, shapes



def frame_classes(phonemes: list[tuple[str, float, float]], duration_s: float, frame_times: np.ndarray) -> np.ndarray:
    """The viseme class spoken at each frame's time: the keyframe (`keyframes`) whose span holds it.

    A hard label per frame for training what the mouth is saying: `frame_times` [F] seconds → [F] int64 indices
    into `VISEMES` (silence between phones; a glide's first class in its first half). The mouth itself blends
    neighbouring keyframes (`coarticulate`).
    """
    times, spans, classes = keyframes(phonemes, duration_s)
    starts = times - spans / 2
    return classes[np.clip(np.searchsorted(starts, frame_times, side="right") - 1, 0, len(classes) - 1)]
