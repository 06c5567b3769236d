"""Audio-to-face animation: audio latents → per-frame expression, jaw and head pose, and its losses."""

from foundation.animation.losses import AnimationLossConfig, animation_loss, mouth_weights, pose_vertices
from foundation.animation.model import POSE_KEYS, Animator, AnimatorConfig

__all__ = ["POSE_KEYS", "AnimationLossConfig", "Animator", "AnimatorConfig", "animation_loss", "mouth_weights",
           "pose_vertices"]
