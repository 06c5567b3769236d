"""Lookups into the 52 ARKit blendshape columns of `expr` (defined once in `datasets.schema`)."""

from datasets.schema import EXPRESSION_NAMES


def shape_indices(name: str) -> list[int]:
    """Indices of `name` in `EXPRESSION_NAMES`, or of its Left and Right halves (`"mouthSmile"`)."""
    if name in EXPRESSION_NAMES:
        return [EXPRESSION_NAMES.index(name)]
    sides = [EXPRESSION_NAMES.index(name + side) for side in ("Left", "Right") if name + side in EXPRESSION_NAMES]
    if not sides:
        raise KeyError(name)
    return sides
