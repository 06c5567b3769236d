"""The 52 ARKit blendshape names, in MediaPipe FaceLandmarker's (alphabetical) order.

`expr` arrays everywhere in replica are [F, 52] weights in [0, 1] in this order. The synthetic
world lives below `foundation` and so cannot import `foundation.morphable.EXPRESSION_NAMES`;
a test there checks that both tuples stay identical.
"""

EXPRESSION_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)


def shape_indices(name: str) -> list[int]:
    """Indices of `name` in `EXPRESSION_NAMES`, or of its Left and Right halves (`"mouthSmile"`)."""
    if name in EXPRESSION_NAMES:
        return [EXPRESSION_NAMES.index(name)]
    sides = [EXPRESSION_NAMES.index(name + side) for side in ("Left", "Right") if name + side in EXPRESSION_NAMES]
    if not sides:
        raise KeyError(name)
    return sides
