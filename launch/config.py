"""One config per run: typed sections loaded from YAML, overridable by dotted keys, saved beside outputs.

    cfg = load_config("tiny", ["train.lr=3e-4", "storage.root=s3://bucket/runs"])

A config is named (`tiny`, `default`, `cluster`: the files shipped in `launch/configs/`) or given as a path or
URL; `base: NAME` at its top starts it from another config and changes only the keys it lists. Overrides are `dotted.key=value` with the value parsed as YAML (`3e-4`, `true`, `[1, 2]`).
Unknown keys and wrong types are rejected with the offending key named.
"""

from __future__ import annotations

from pathlib import Path

import pydantic
import yaml
from pydantic import Field

from cluster.fleet import FleetConfig
from cluster.runtime import RuntimeConfig
from datasets import storage
from datasets.config import Section, StorageConfig
from datasets.errors import ReplicaError
from datasets.corpora import CorporaConfig
from datasets.ingest import IngestConfig
from datasets.loader import LoaderConfig
from foundation.world.world import SynthConfig
from foundation.animation.model import AnimatorConfig
from foundation.audio.augment import AugmentConfig
from foundation.audio.encoder import AudioEncoderConfig
from foundation.animation.losses import AnimationLossConfig
from foundation.audio.losses import AudioLossConfig
from foundation.audio.features import FeatureConfig
from foundation.training.config import TrainConfig
from render.avatar import AvatarConfig
from render.pipeline import RenderOptions
from render.refine import RefineConfig
from render.serve_config import ServeConfig
from personalize.ingest import PersonIngestConfig
from personalize.finetune import FinetuneConfig
from personalize.tracking import TrackingConfig
from personalize.voice import VoiceConfig
from launch.release import ReleaseConfig

CONFIG_DIR = Path(__file__).parent / "configs"


class DemoConfig(Section):
    """Sizes of `replica demo`'s own data; its rendered clips follow `synth`, its models `train` and `avatar`."""

    train_identities: int = Field(24, ge=2)
    """Made-up speakers in the pre-training set (audio and face parameters, no video)."""
    train_clips_per_identity: int = Field(6, ge=1)
    """Clips spoken by each pre-training speaker."""
    heldout_identities: int = Field(6, ge=2)
    """Held-out speakers the models are evaluated on; their voices never occur in the pre-training set."""
    heldout_clips_per_identity: int = Field(4, ge=2)
    """Clips spoken by each held-out speaker (speaker verification pairs clips of one speaker)."""
    person_seconds: float = Field(12.0, gt=0)
    """Length of the synthetic person video the avatar is trained on, in seconds."""


class ReplicaConfig(Section):
    """The whole configuration of a replica run."""

    name: str = "tiny"
    """Name of the preset this config came from (for logs and run folders)."""
    storage: StorageConfig = StorageConfig()
    """Where artifacts live."""
    runtime: RuntimeConfig = RuntimeConfig()
    """Ray, device, precision and renderer choices."""
    ingest: IngestConfig = IngestConfig()
    """How `replica data ingest` cuts raw videos into samples."""
    corpora: CorporaConfig = CorporaConfig()
    """Where `replica data corpus` caches the packages its recordings come from."""
    synth: SynthConfig = SynthConfig()
    """The synthetic talking-head world (size, identities, voices, video on/off)."""
    loader: LoaderConfig = LoaderConfig()
    """How training reads shards (batch size, window, workers, shuffle)."""
    features: FeatureConfig = FeatureConfig()
    """Audio features computed from wav in the loader (log-mel, MFCC)."""
    train: TrainConfig = TrainConfig()
    """Pre-training schedule, DeepSpeed and checkpointing."""
    audio_encoder: AudioEncoderConfig = AudioEncoderConfig()
    """Audio encoder sizes."""
    audio_loss: AudioLossConfig = AudioLossConfig()
    """Weights of the audio encoder's speaker (AAM-softmax), content (CPC) and distillation terms."""
    augment: AugmentConfig = AugmentConfig()
    """Seeded degradations of training audio in the loader (speed, formants, rooms, noise, phone, codecs, level)."""
    animator: AnimatorConfig = AnimatorConfig()
    """Animator sizes."""
    animator_loss: AnimationLossConfig = AnimationLossConfig()
    """Weights of the animator's loss terms (coefficients, vertices, velocity, visemes)."""
    avatar: AvatarConfig = AvatarConfig()
    """Gaussian avatar: size, SH degree, Gaussian budget, schedule, loss weights, densification."""
    refine: RefineConfig = RefineConfig()
    """GAN refiner after splatting: size, schedule, loss weights (enabled: false switches it off)."""
    creation: PersonIngestConfig = PersonIngestConfig()
    """`replica create`'s checks of a person's video and its face crop."""
    tracking: TrackingConfig = TrackingConfig()
    """How `replica create` fits the head model to every frame (landmarks, then photometry)."""
    voice: VoiceConfig = VoiceConfig()
    """How `replica create` chooses the person's voice from the TTS pool (candidates, sentences, override)."""
    finetune: FinetuneConfig = FinetuneConfig()
    """How `replica create` fine-tunes the foundation animator to the person (the Ray Tune search)."""
    render: RenderOptions = RenderOptions()
    """How `replica render` turns a script into video (chunking, idle motion, size, language, limits)."""
    demo: DemoConfig = DemoConfig()
    """What `replica demo` builds beyond the sections above."""
    fleet: FleetConfig = FleetConfig()
    """`replica fleet create`: avatars in flight, retries and their backoff, the step to stop after."""
    serve: ServeConfig = ServeConfig()
    """`replica serve`: the HTTP service (port, auth, limits, renderer scaling and replica cache)."""
    release: ReleaseConfig = ReleaseConfig()
    """`replica release build`: the data and schedule of the recipe that trains the default foundation release."""


def shipped_configs() -> list[str]:
    """Names of the presets shipped in launch/configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _read_source(source: str) -> tuple[str, dict]:
    if (CONFIG_DIR / f"{source}.yaml").exists():
        url = str(CONFIG_DIR / f"{source}.yaml")
    elif storage.is_remote(source) or Path(source).exists():
        url = source
    else:
        raise ReplicaError(source, f"no such config file or preset (presets: {', '.join(shipped_configs())})")
    try:
        data = yaml.safe_load(storage.read_text(url)) or {}
    except yaml.YAMLError as err:
        raise ReplicaError(url, f"not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(data, dict):
        raise ReplicaError(url, "a config file must hold a mapping of sections")
    base = data.pop("base", None)
    if base is not None:  # a preset may start from another and change some keys
        if base == source or base == Path(source).stem:
            raise ReplicaError(url, f"base: {base} names itself")
        data = _merged(_read_source(str(base))[1], data)
    return url, data


def _merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied section by section (nested mappings merged, other values replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_override(data: dict, override: str) -> None:
    """Set `dotted.key=value` in the nested dict `data` (value parsed as YAML)."""
    if "=" not in override:
        raise ReplicaError(f"--set {override}", "expected dotted.key=value")
    key, raw = override.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ReplicaError(f"--set {override}", "empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ReplicaError(f"config key {'.'.join(parts[:depth + 1])}", "is a value, not a section")
        node = child
    node[parts[-1]] = value


def _validation_error(err: pydantic.ValidationError, section: str = "") -> ReplicaError:
    first = err.errors()[0]
    key = ".".join(([section] if section else []) + [str(p) for p in first["loc"]]) or "(root)"
    reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    if first["type"] != "extra_forbidden" and "input" in first:
        reason = f"{reason} (got {first['input']!r})"
    more = len(err.errors()) - 1
    return ReplicaError(f"config key {key}", reason + (f" (+{more} more problems)" if more else ""))


def load_config(source: str = "tiny", overrides: list[str] | None = None) -> ReplicaConfig:
    """Load a preset name, path or URL, apply `dotted.key=value` overrides and validate."""
    _, data = _read_source(source)
    data.setdefault("name", Path(source).stem if not (CONFIG_DIR / f"{source}.yaml").exists() else source)
    for override in overrides or []:
        apply_override(data, override)
    try:
        return ReplicaConfig.model_validate(data)
    except pydantic.ValidationError as err:
        raise _validation_error(err) from None


def with_options(cfg: Section, section: str, **options) -> Section:
    """The config section `cfg` (named `section` in the run config) with the given options set, validated.

    Options that are None were not given and keep the section's value. A command-line option is checked
    exactly as the same key in the config file or a `--set` would be: `with_options(cfg.synth, "synth",
    identities=-1)` raises `ReplicaError("config key synth.identities", "Input should be greater than or
    equal to 1 (got -1)")`.
    """
    given = {key: value for key, value in options.items() if value is not None}
    try:
        return type(cfg).model_validate({**cfg.model_dump(), **given})
    except pydantic.ValidationError as err:
        raise _validation_error(err, section) from None


def save_config(cfg: ReplicaConfig, folder_url: str) -> str:
    """Write the resolved config as `config.yaml` in `folder_url`; returns its URL."""
    url = storage.join(folder_url, "config.yaml")
    storage.write_text(url, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return url
