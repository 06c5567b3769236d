"""`replica release build`: the `default` recipe that trains the foundation release shipped with replica.

One command, resumable step by step (each step is skipped when its output exists), so a new user gets models
that work on real speech without an hour of setting up:

1. **data** — TTS speech from the voice pool (`synth`, audio + face parameters, no video; training voices
   only, one speaker label per voice), its held-out voices, the real speech corpora that ship inside
   packages (`datasets.corpora`, split by speaker into train / held-out), and real speech driving the
   synthetic world's viseme motion (`speech-faces`: real voices with true mouth motion; `animator_corpora` add
   speakers the encoder never hears). Mixtures (`datasets.shards.mix_datasets`) list each set a configured number
   of times, so the small real sets are drawn often enough and do not crowd out the TTS speech.
2. **audio** — `replica pretrain audio` on TTS + real speech, augmented (`augment`), with resemblyzer
   distillation next to AAM-softmax and CPC; evaluated on the held-out real speakers.
3. **animator** — `replica pretrain animator` from that encoder on TTS + real-speech faces.
4. **evaluate** — EER of ours vs resemblyzer on held-out real speakers, held-out TTS voices and degraded
   trials; LVE on held-out real-speech and TTS clips vs the energy→jaw and mean-face baselines.
5. **package** — `<out>/release/`: `audio.pt`, `animator.pt`, `release.json` (version, sha256 of each file,
   the recipe's exact config, the evaluation, the data's sources and licences), `config.yaml`.
   `--install` copies it into the package (`foundation/release/`), where `foundation.load_audio_encoder()` /
   `load_animator()` with no argument find it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import time

from pydantic import Field, field_validator
from rich.console import Console

from datasets import storage
from datasets.config import Section
from datasets.errors import ReplicaError

RELEASE_VERSION = "0.5.0"
"""Version of the release this recipe builds (bump when the recipe or its data change)."""
RECIPE_SECTIONS = ("ingest", "corpora", "synth", "loader", "features", "train", "audio_encoder", "audio_loss",
                   "augment", "animator", "animator_loss", "release")
"""The config sections the release's data, training and evaluation read: changing one of them changes what the
recipe would train. The rest (storage, runtime, replica creation, rendering, serving) are recorded in
`release.json` too but do not touch the weights."""


class ReleaseConfig(Section):
    """What the `default` recipe trains on and how long (the models' sizes are `audio_encoder` / `animator`)."""

    tts_clips_per_identity: int = Field(6, ge=1)
    """Clips spoken by each TTS training identity (one identity per training voice)."""
    tts_identities: int = Field(96, ge=2)
    """TTS training identities (voices are dealt to them in turn, so up to this many distinct voices)."""
    heldout_identities: int = Field(12, ge=2)
    """TTS held-out identities (held-out voices only)."""
    corpora: list[str] = ["arctic", "librivox", "ami", "mfa", "asterisk"]
    """The shipped speech corpora (`datasets.corpora.CORPORA`) the release's real speech comes from, split by
    speaker into train / held-out; both models train on it and are evaluated on its held-out speakers."""
    animator_corpora: list[str] = []
    """More corpora whose training speakers only drive the animator's faces (the audio encoder never hears
    them). Corpora that make faces better on real speech can make speaker verification worse: `fillets` did
    both (docs/training.md)."""
    real_repeat: int = Field(4, ge=1)
    """How many times the real training speech is listed in the audio encoder's mixture."""
    faces_identities: int = Field(8, ge=1)
    """Made-up faces the real speech is dealt to for the animator."""
    faces_repeat: int = Field(2, ge=1)
    """How many times the real-speech faces are listed in the animator's mixture."""
    animator_tts_repeat: int = Field(1, ge=1)
    """How many times the TTS speech is listed in the animator's mixture (text→video speaks TTS audio, so
    more real-speech faces should not crowd it out)."""
    animator_steps: int | None = Field(None, ge=1)
    """Animator training steps (None: train.steps)."""
    animator_lr: float | None = Field(None, gt=0)
    """Animator peak learning rate (None: train.lr)."""

    @field_validator("corpora", "animator_corpora")
    @classmethod
    def _known_corpora(cls, value: list[str]) -> list[str]:
        from datasets.corpora import CORPORA

        unknown = [name for name in value if name not in CORPORA]
        if unknown:
            raise ValueError(f"unknown corpus {', '.join(unknown)} (choose from {', '.join(CORPORA)})")
        return value


def speech_corpora(rc: ReleaseConfig) -> dict[str, list[str]]:
    """The corpora each real-speech dataset of the recipe is built from: the encoder's `real_train` /
    `real_heldout`, and `faces_speech_train` (the speech driving the animator's training faces) only when
    `animator_corpora` add corpora the encoder does not hear; otherwise the faces speak `real_train`."""
    plan = {"real_train": rc.corpora, "real_heldout": rc.corpora}
    extra = [c for c in dict.fromkeys(rc.animator_corpora) if c not in rc.corpora]
    if extra:
        plan["faces_speech_train"] = rc.corpora + extra
    return plan


def mixtures(rc: ReleaseConfig, data: dict[str, str]) -> dict[str, list[tuple[str, int]]]:
    """Each model's training mixture: (dataset URL, times listed)."""
    return {"audio_mix": [(data["tts_train"], 1), (data["real_train"], rc.real_repeat)],
            "animator_mix": [(data["tts_train"], rc.animator_tts_repeat), (data["faces_train"], rc.faces_repeat)]}


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _step(console: Console, title: str) -> float:
    console.print(f"[bold]{title}[/]")
    return time.perf_counter()


def _done(console: Console, started: float, what: str) -> None:
    console.print(f"  {what} ({time.perf_counter() - started:.0f}s)", highlight=False)


def build_data(cfg, out: str, console: Console) -> dict[str, str]:
    """Every dataset of the recipe under `<out>/data`; returns their URLs (existing ones are kept)."""
    from cluster.synth import speech_faces_dataset, synth_dataset
    from datasets.corpora import build_corpora
    from datasets.shards import mix_datasets, read_manifest
    from foundation.world import HELDOUT_VOICES, TRAIN_VOICES
    from launch.config import with_options

    rc: ReleaseConfig = cfg.release
    corpora = speech_corpora(rc)
    names = ["tts_train", "tts_heldout", *corpora, "faces_train", "faces_heldout", "audio_mix", "animator_mix"]
    data = {name: storage.join(out, "data", name) for name in names}

    def have(name: str) -> bool:
        return storage.exists(storage.join(data[name], "manifest.json"))

    t = _step(console, "1. data: TTS voices, real speech from packages, real speech driving faces")
    worlds = {"tts_train": with_options(cfg.synth, "synth", video=False, identities=rc.tts_identities,
                                        clips_per_identity=rc.tts_clips_per_identity, seed=11, voices=TRAIN_VOICES,
                                        voice_order="cycle"),
              "tts_heldout": with_options(cfg.synth, "synth", video=False, identities=rc.heldout_identities,
                                          clips_per_identity=4, seed=12, voices=HELDOUT_VOICES,
                                          voice_order="cycle")}
    for name, world in worlds.items():
        synth_dataset(world, data[name], runtime=cfg.runtime, console=console, show_progress=False)
    for name, which in corpora.items():
        if not have(name):
            build_corpora(which, data[name], cfg.corpora, split=name.rsplit("_", 1)[1])  # …_train / …_heldout
    for split, speech in (("train", data.get("faces_speech_train", data["real_train"])),
                          ("heldout", data["real_heldout"])):
        if not have(f"faces_{split}"):
            faces = with_options(cfg.synth, "synth", video=False, identities=rc.faces_identities,
                                 seed=13 if split == "train" else 14)
            speech_faces_dataset(faces, speech, data[f"faces_{split}"], runtime=cfg.runtime, console=console)
    for name, sources in mixtures(rc, data).items():
        if not have(name):
            mix_datasets(data[name], sources)
    width = max(map(len, data))
    for name, url in data.items():
        manifest = read_manifest(url)
        speakers = manifest.info.get("speakers")
        console.print(f"  {name:<{width}} {manifest.num_samples:5d} samples, {len(manifest.shards):3d} shards, "
                      f"{len(speakers) if speakers else '?'} speakers → {url}", highlight=False)
    _done(console, t, "data ready")
    return data


def train_models(cfg, out: str, data: dict[str, str], console: Console) -> dict[str, str]:
    """Pre-train the audio encoder, then the animator from it; returns their run folders (finished runs kept)."""
    from cluster.pretrain import pretrain

    rc: ReleaseConfig = cfg.release
    runs = {"audio": storage.join(out, "audio"), "animator": storage.join(out, "animator")}
    for kind in ("audio", "animator"):
        model = storage.join(runs[kind], "model.pt")
        if storage.exists(model):
            console.print(f"2. {kind}: {model} exists, kept", highlight=False)
            continue
        t = _step(console, f"{'2' if kind == 'audio' else '3'}. pre-train the {kind} model")
        run_cfg = cfg
        if kind == "animator":
            run_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={
                "steps": rc.animator_steps or cfg.train.steps, "lr": rc.animator_lr or cfg.train.lr})})
        summary = pretrain(kind, run_cfg, data["audio_mix" if kind == "audio" else "animator_mix"], runs[kind],
                           init_from=storage.join(runs["audio"], "model.pt") if kind == "animator" else None)
        metrics = summary["final_metrics"]
        _done(console, t, f"{metrics.get('step')} steps, final loss {metrics.get('loss', float('nan')):.3f}")
    return runs


def evaluate_release(runs: dict[str, str], data: dict[str, str], console: Console) -> dict:
    """The release's evaluation table (see `foundation.evaluation.release_report`)."""
    from foundation.evaluation import release_report
    from foundation.evaluation.runner import standard_degradations

    t = _step(console, "4. evaluate on held-out real speakers (clean, noisy, telephone) and held-out TTS voices")
    report = release_report(storage.join(runs["audio"], "model.pt"), storage.join(runs["animator"], "model.pt"),
                            data, standard_degradations())
    _done(console, t, "evaluated")
    return report


def package(cfg, out: str, runs: dict[str, str], data: dict[str, str], report: dict) -> str:
    """Write `<out>/release/` (models, release.json, config.yaml); returns its folder."""
    from datasets.shards import read_manifest
    from launch.config import save_config
    from foundation.models import RELEASE_FILES

    folder = storage.join(out, "release")
    files = {}
    for kind, name in RELEASE_FILES.items():
        payload = storage.read_bytes(storage.join(runs[kind], "model.pt"))
        storage.write_bytes(storage.join(folder, name), payload)
        files[name] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    save_config(cfg, folder)
    sources = {}
    for name in ("real_train", "faces_speech_train", "real_heldout"):
        if name not in data:
            continue
        info = read_manifest(data[name]).info
        sources[name] = {k: info[k] for k in ("speakers", "sources", "licenses", "corpora") if k in info}
    storage.write_json(storage.join(folder, "release.json"), {
        "version": RELEASE_VERSION, "recipe": cfg.name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "files": files, "config": cfg.model_dump(mode="json"), "eval": report, "data": sources,
        "training": {kind: {k: summary.get(k) for k in ("seconds", "device", "precision")} | {
            "steps": summary.get("final_metrics", {}).get("step"),
            "resumed_from_step": summary.get("final_metrics", {}).get("start_step")}
            for kind, summary in ((kind, storage.read_json(storage.join(runs[kind], "train_summary.json")))
                                  for kind in RELEASE_FILES)}})
    return folder


def install(folder: str) -> str:
    """Copy a built release into the package (`foundation/release/`), replacing what is there."""
    from foundation.models import RELEASE_DIR, RELEASE_FILES, release_info

    local = storage.local_path(folder)
    if local is None:
        raise ReplicaError(folder, "install copies from a local folder")
    info = release_info(local)
    for name, meta in info["files"].items():
        if sha256_file(os.path.join(local, name)) != meta["sha256"]:
            raise ReplicaError(os.path.join(local, name), "sha256 does not match release.json")
    os.makedirs(RELEASE_DIR, exist_ok=True)
    for name in (*RELEASE_FILES.values(), "release.json", "config.yaml"):
        shutil.copyfile(os.path.join(local, name), os.path.join(RELEASE_DIR, name))
    return RELEASE_DIR


def build_release(cfg, out: str, console: Console | None = None, install_it: bool = False) -> dict:
    """Run the recipe into `out` (resuming finished steps); returns release.json's content."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    data = build_data(cfg, out, console)
    runs = train_models(cfg, out, data, console)
    report = evaluate_release(runs, data, console)
    folder = package(cfg, out, runs, data, report)
    console.print(f"5. release {RELEASE_VERSION} → {folder} ({time.perf_counter() - started:.0f}s this run)",
                  highlight=False)
    if install_it:
        console.print(f"   installed into {install(folder)}", highlight=False)
    return storage.read_json(storage.join(folder, "release.json"))
