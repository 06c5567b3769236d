"""Export a render's face animation for other engines: ARKit-52 blendshape curves and head pose at 25 fps.

Game engines and other renderers (Unreal Live Link, Unity, Blender, three.js) drive faces with Apple's 52
ARKit blendshapes, the very expression basis of replica's head model, so a render's per-frame parameters
export as they are:

    CSV:  frame, time_s, <52 ARKit names>, jaw_x..z, neck_x..z, head_x..z, trans_x..z   (one row per frame)
    JSON: {"fps", "frames", "blendshape_names", "blendshapes": [[52] per frame], "jaw"/"neck"/"head"/"trans":
           [[3] per frame]}

Rotations are axis-angle vectors in radians (`head` is the whole bust's rotation, `neck` the head relative to
the shoulders), translations metres, in the head model's frame (+y up, +z towards the camera).
`read_params_export` reads either format back.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from datasets import storage
from datasets.errors import ReplicaError
from datasets.schema import EXPRESSION_NAMES, FPS

POSES = {"jaw": "jaw", "neck": "neck", "rot": "head", "trans": "trans"}
"""FaceParams field → exported name."""


class ParamsExport:
    """Collects chunks' parameters (`Chunk.params`) and writes them as CSV or JSON (by the URL's suffix)."""

    def __init__(self, fps: float = FPS):
        self.fps = fps
        self.rows: dict[str, list[np.ndarray]] = {key: [] for key in ("expr", *POSES)}

    def add(self, params: dict[str, np.ndarray]) -> None:
        """Append frames: expr [n, 52], jaw/neck/rot/trans [n, 3]."""
        for key, rows in self.rows.items():
            rows.append(np.asarray(params[key], np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.concatenate(rows) if rows else np.zeros((0, 52 if key == "expr" else 3), np.float32)
                for key, rows in self.rows.items()}

    def write(self, url: str) -> None:
        """Write to `url` (`.csv` or `.json`) atomically."""
        arrays = self.arrays()
        if url.endswith(".json"):
            doc = {"fps": self.fps, "frames": len(arrays["expr"]), "blendshape_names": list(EXPRESSION_NAMES),
                   "blendshapes": np.round(arrays["expr"], 6).tolist(),
                   **{name: np.round(arrays[key], 6).tolist() for key, name in POSES.items()}}
            storage.write_text(url, json.dumps(doc))
        elif url.endswith(".csv"):
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["frame", "time_s", *EXPRESSION_NAMES,
                             *[f"{name}_{axis}" for name in POSES.values() for axis in "xyz"]])
            table = np.concatenate([arrays["expr"], *[arrays[key] for key in POSES]], axis=1)
            for i, row in enumerate(table):
                writer.writerow([i, f"{i / self.fps:.3f}", *[f"{v:.6f}" for v in row]])
            storage.write_text(url, out.getvalue())
        else:
            raise ReplicaError(url, "export parameters to a .csv or .json file")


def read_params_export(url: str) -> dict[str, np.ndarray]:
    """Read a CSV or JSON export back: expr [F, 52], jaw/neck/rot/trans [F, 3] float32 (FaceParams names)."""
    text = storage.read_text(url)
    if url.endswith(".json"):
        doc = json.loads(text)
        if doc.get("blendshape_names") != list(EXPRESSION_NAMES):
            raise ReplicaError(url, "blendshape names are not ARKit-52 in replica's order")
        return {"expr": np.asarray(doc["blendshapes"], np.float32).reshape(-1, 52),
                **{key: np.asarray(doc[name], np.float32).reshape(-1, 3) for key, name in POSES.items()}}
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0][2:54] != list(EXPRESSION_NAMES):
        raise ReplicaError(url, "not a replica parameter export (header differs)")
    table = np.asarray([[float(v) for v in row[2:]] for row in rows[1:]], np.float32).reshape(-1, 52 + 3 * len(POSES))
    out = {"expr": table[:, :52]}
    for i, key in enumerate(POSES):
        out[key] = table[:, 52 + 3 * i: 55 + 3 * i]
    return out
