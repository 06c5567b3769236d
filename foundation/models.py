"""The trained foundation models on storage: the `model.pt` export, written once and loaded everywhere.

A run ends by exporting its model as one `torch.save`d dict that loads without DeepSpeed or Ray:

    audio:    {"kind": "audio", "config": {"encoder", "features"}, "state_dict", "speakers"}
    animator: {"kind": "animator", "config": {"animator", "features", "init_from"}, "state_dict",
               "encoder_config", "encoder_state_dict"}   (the animator carries the encoder it was trained with)

`load_audio_encoder`, `load_animator` (and `load_animator_start` for training's `init_from`) are the only
readers: training, evaluation, the demo and everything downstream call them; `speech_to_face` is the one
way audio drives the animator.

**The default release.** With no URL, both loaders read the models that ship inside the package
(`foundation/release/`: `audio.pt`, `animator.pt`, and `release.json` with their version, sha256, the exact
config of the recipe that trained them and their evaluation). `replica release build` retrains them
(`launch/release.py`); `release_info()` describes what is installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass

import torch

from datasets import storage
from datasets.errors import ReplicaError
from foundation.animation.model import Animator, AnimatorConfig
from foundation.audio.encoder import AudioEncoder, AudioEncoderConfig
from foundation.audio.features import FeatureConfig


@dataclass
class AudioEncoderModel:
    """A pre-trained audio encoder (eval mode) with the features it reads and the speakers it was trained on."""

    encoder: AudioEncoder
    features: FeatureConfig
    speakers: list[str]


@dataclass
class AnimatorModel:
    """A pre-trained animator with the audio encoder and features it was trained on (eval mode)."""

    animator: Animator
    encoder: AudioEncoder
    features: FeatureConfig


def audio_export(encoder: AudioEncoder, features: FeatureConfig, speakers: list[str]) -> dict:
    """The export of a trained audio encoder (`speakers`: the training speakers, for evaluation reports)."""
    return {"kind": "audio",
            "config": {"encoder": encoder.cfg.model_dump(mode="json"), "features": features.model_dump(mode="json")},
            "state_dict": encoder.state_dict(), "speakers": sorted(speakers)}


def animator_export(animator: Animator, encoder: AudioEncoder, features: FeatureConfig, init_from: str) -> dict:
    """The export of a trained animator with its encoder (`init_from`: the export training started from)."""
    return {"kind": "animator",
            "config": {"animator": animator.cfg.model_dump(mode="json"), "features": features.model_dump(mode="json"),
                       "init_from": init_from},
            "state_dict": animator.state_dict(),
            "encoder_config": encoder.cfg.model_dump(mode="json"), "encoder_state_dict": encoder.state_dict()}


def save_export(payload: dict, url: str) -> None:
    """Write an export dict (from `audio_export` / `animator_export`) to `url` atomically."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    storage.write_bytes(url, buf.getvalue())


def load_exported(url: str) -> dict:
    """Read a `model.pt` export (kind, config, state_dict, …) from storage, on the CPU."""
    try:
        payload = torch.load(io.BytesIO(storage.read_bytes(url)), map_location="cpu", weights_only=False)
    except ReplicaError:
        raise
    except Exception as err:  # noqa: BLE001 - a corrupt file is a user error
        raise ReplicaError(url, f"not a replica model export ({type(err).__name__})") from err
    if not isinstance(payload, dict) or "kind" not in payload or "state_dict" not in payload:
        raise ReplicaError(url, "not a replica model export (no kind/state_dict)")
    return payload


def _encoder(config: dict, state_dict: dict) -> AudioEncoder:
    encoder = AudioEncoder(AudioEncoderConfig.model_validate(config))
    encoder.load_state_dict(state_dict)
    return encoder.eval()


def _audio_encoder_of(payload: dict) -> AudioEncoderModel:
    encoder = _encoder(payload["config"]["encoder"], payload["state_dict"])
    return AudioEncoderModel(encoder, FeatureConfig.model_validate(payload["config"]["features"]),
                             list(payload.get("speakers", [])))


def _animator_of(payload: dict) -> AnimatorModel:
    animator = Animator(AnimatorConfig.model_validate(payload["config"]["animator"]))
    animator.load_state_dict(payload["state_dict"])
    encoder = _encoder(payload["encoder_config"], payload["encoder_state_dict"])
    return AnimatorModel(animator.eval(), encoder, FeatureConfig.model_validate(payload["config"]["features"]))


def _check_kind(payload: dict, url: str, kind: str, what: str) -> None:
    if payload["kind"] != kind:
        raise ReplicaError(url, f"is a {payload['kind']} model, not {what}")


RELEASE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")
"""Where the default foundation release lives inside the installed package."""
RELEASE_FILES = {"audio": "audio.pt", "animator": "animator.pt"}


def release_info(folder: str = RELEASE_DIR) -> dict:
    """`release.json` of the default release: version, files with sha256, recipe config, evaluation."""
    path = os.path.join(folder, "release.json")
    if not os.path.isfile(path):
        raise ReplicaError("the default foundation release",
                           f"is not installed ({path} missing): build one with `replica release build --install`, "
                           "or pass a model.pt URL")
    with open(path) as f:
        return json.load(f)


def release_url(kind: str, folder: str = RELEASE_DIR, verify: bool = True) -> str:
    """Path of the default release's `kind` ("audio" | "animator") model, its sha256 checked against release.json."""
    if kind not in RELEASE_FILES:
        raise ReplicaError(f"release model {kind!r}", f"expected one of {sorted(RELEASE_FILES)}")
    info = release_info(folder)
    path = os.path.join(folder, RELEASE_FILES[kind])
    if not os.path.isfile(path):
        raise ReplicaError(path, "listed in the default release but missing from the install")
    if verify:
        expected = info.get("files", {}).get(RELEASE_FILES[kind], {}).get("sha256")
        with open(path, "rb") as f:
            actual = hashlib.sha256(f.read()).hexdigest()
        if expected != actual:
            raise ReplicaError(path, f"sha256 {actual[:12]}… does not match release.json ({str(expected)[:12]}…)")
    return path


def load_audio_encoder(url: str | None = None) -> AudioEncoderModel:
    """The audio encoder of an `audio` export (None: the default release's), in eval mode, with its feature
    config and training speakers."""
    url = url or release_url("audio")
    payload = load_exported(url)
    _check_kind(payload, url, "audio", "an audio encoder")
    return _audio_encoder_of(payload)


def load_animator(url: str | None = None) -> AnimatorModel:
    """The animator of an `animator` export (None: the default release's) with its audio encoder and feature
    config, in eval mode."""
    url = url or release_url("animator")
    payload = load_exported(url)
    _check_kind(payload, url, "animator", "an animator")
    return _animator_of(payload)


def load_animator_start(url: str) -> tuple[AudioEncoder, FeatureConfig, Animator | None]:
    """What an animator run starts from: an audio export's encoder (animator None: start one fresh),
    or an animator export's encoder and animator. Read once; models in eval mode."""
    payload = load_exported(url)
    if payload["kind"] == "audio":
        audio = _audio_encoder_of(payload)
        return audio.encoder, audio.features, None
    _check_kind(payload, url, "animator", "an audio encoder or an animator")
    model = _animator_of(payload)
    return model.encoder, model.features, model.animator


def speech_to_face(encoder: AudioEncoder, animator: Animator, mel: torch.Tensor,
                   mel_len: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Face parameters for speech: the encoder's latents (and, with `style_dim`, its speaker embedding) → animator.

    mel: [B, N, n_mels] log-mel at 100 Hz; mel_len: [B] valid mel frames (None: all).
    Returns the animator's dict: expr [B, N/4, 52] in [0, 1]; jaw, neck, rot [B, N/4, 3] axis-angle
    radians; trans [B, N/4, 3] metres.
    """
    return speech_to_face_and_latent(encoder, animator, mel, mel_len)[0]


def speech_to_face_and_latent(encoder: AudioEncoder, animator: Animator, mel: torch.Tensor,
                              mel_len: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """`speech_to_face`'s parameters and the encoder latents [B, N/4, D] the animator read (for training terms)."""
    audio = encoder(mel, mel_len)
    return animator(audio.latent, audio.embedding if animator.cfg.style_dim else None), audio.latent
