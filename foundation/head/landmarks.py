"""Named MediaPipe landmark index sets the head model is built and measured with.

All ids are MediaPipe FaceLandmarker landmark ids, which equal vertex ids of the canonical face
(0–467) and of the iris points on the eyeballs (468–477). "Left" is the subject's left (+x in the world).
"""

from __future__ import annotations

import numpy as np

INNER_LIP = np.array([78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191])
"""Inner lip contour, ordered around the mouth opening (corner 78 → lower lip → corner 308 → upper lip)."""
UPPER_INNER_LIP = np.array([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308])
LOWER_INNER_LIP = np.array([78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308])
UPPER_OUTER_LIP = np.array([61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291])
LOWER_OUTER_LIP = np.array([61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291])
MOUTH_CORNER_L, MOUTH_CORNER_R = 291, 61

EYE_L = np.array([263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466])
"""Subject's left eye opening, ordered: outer corner 263 → lower lid → inner corner 362 → upper lid."""
EYE_R = np.array([33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246])
UPPER_LID_L = np.array([263, 466, 388, 387, 386, 385, 384, 398, 362])
LOWER_LID_L = np.array([263, 249, 390, 373, 374, 380, 381, 382, 362])
BROW_L = np.array([276, 283, 282, 295, 285, 300, 293, 334, 296, 336])
"""Left eyebrow: lower edge outer→inner, then upper edge outer→inner."""
BROW_INNER_L = np.array([285, 295, 336, 296])
BROW_OUTER_L = np.array([276, 283, 300, 293])
CHEEK_L = np.array([425, 411, 427, 280, 352, 376])
CHEEKBONE_L = np.array([330, 347, 346, 280, 340])
NOSE_WING_L = np.array([294, 278, 279, 360, 344])
CHIN = np.array([152, 148, 377, 176, 400, 175, 199, 200, 18])

IRIS_R = np.arange(468, 473)
IRIS_L = np.arange(473, 478)
"""Iris landmarks: centre, then the iris circle at image right (+x), top, left, bottom."""

LMK68 = np.array([
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  # jaw line
    71, 63, 105, 66, 107,  # brow, image left
    336, 296, 334, 293, 301,  # brow, image right
    168, 197, 5, 4,  # nose bridge
    75, 97, 2, 326, 305,  # nostrils
    33, 160, 158, 133, 153, 144,  # eye, image left
    362, 385, 387, 263, 373, 380,  # eye, image right
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips
])  # fmt: skip
"""The iBUG 68-point layout as MediaPipe landmark ids (the widely used correspondence). [68]"""
