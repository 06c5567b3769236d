"""Draws docs/motion_curves.png: synthetic talking motion for one piper sentence, to eyeball.

Run: `.venv/bin/python docs/motion_curves.py` from the repository root.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from datasets.schema import EXPRESSION_NAMES  # noqa: E402
from foundation.world.motion import synthesize_motion  # noqa: E402
from foundation.tts import synthesize  # noqa: E402

speech = synthesize("Maybe we should buy a blue boat. Wow, that is wonderful!", "piper:joe")
motion = synthesize_motion(speech.wav, speech.phonemes, np.random.default_rng(0))
seconds = np.arange(len(motion.jaw)) / motion.fps
column = EXPRESSION_NAMES.index

figure, axes = plt.subplots(4, 1, figsize=(14, 9), sharex=True)
axes[0].plot(np.arange(len(speech.wav)) / speech.sample_rate, speech.wav, lw=0.3, color="grey")
for phone, start, end in speech.phonemes:
    axes[0].axvspan(start, end, alpha=0.08, color="C0")
    axes[0].text((start + end) / 2, 0.95, phone, ha="center", va="top", fontsize=7)
axes[0].set_ylabel("wav + phones")
axes[1].plot(seconds, motion.jaw[:, 0], ".-", label="jaw x (rad)")
axes[1].plot(seconds, motion.expr[:, column("jawOpen")], label="jawOpen")
axes[1].plot(seconds, motion.expr[:, column("mouthClose")], label="mouthClose")
axes[1].plot(seconds, motion.expr[:, column("mouthPucker")], label="mouthPucker", alpha=0.6)
axes[1].legend(loc="upper right", fontsize=8)
axes[2].plot(seconds, motion.expr[:, column("eyeBlinkLeft")], label="eyeBlinkLeft")
axes[2].plot(seconds, motion.expr[:, column("browInnerUp")], label="browInnerUp")
axes[2].plot(seconds, motion.expr[:, column("mouthSmileLeft")], label="mouthSmileLeft")
axes[2].legend(loc="upper right", fontsize=8)
for axis, name in enumerate(("pitch (nod)", "yaw", "roll")):
    axes[3].plot(seconds, np.rad2deg(motion.neck[:, axis]), label=f"neck {name} (deg)")
axes[3].legend(loc="upper right", fontsize=8)
axes[3].set_xlabel("seconds")
figure.tight_layout()
figure.savefig(Path(__file__).with_suffix(".png"), dpi=90)
