"""`replica create`: one person's video → a replica bundle, each step a Ray task with declared resources.

The steps run in order, each reading its inputs from the bundle folder and writing its outputs there
(`personalize.bundle`): **ingest** (checks, 16 kHz speech, a stable face crop and its landmarks —
`personalize.ingest`), **track** (head-model parameters for every frame, photometric refinement, contact
sheet — `personalize.tracking`), **avatar** (the Gaussian avatar + refiner trained on the crop frames against
the *tracked* meshes, keeping the per-frame parameter corrections it learns — `render.fit`). A step whose
record shows the same inputs and intact outputs is skipped, so a re-run after a crash resumes; `replica.json`
is written last. Voice choice and animator fine-tuning (issue 10's remaining steps) plug in as further steps.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np
from rich.console import Console

from cluster.runtime import RuntimeConfig, init_ray, resolve
from datasets import media, storage
from datasets.errors import ReplicaError
from personalize.bundle import STEPS, StepRecord, finished_step, fingerprint, sha256_of, write_manifest, write_step
from personalize.ingest import PersonIngestConfig
from personalize.tracking import TrackingConfig
from render.avatar import AvatarConfig
from render.refine import RefineConfig

STEP_CPUS = {"ingest": 1, "track": 1, "avatar": 1}
STEP_GPUS = {"ingest": 0.0, "track": 0.25, "avatar": 1.0}
"""Resources each step asks Ray for (GPUs only where the runtime resolves to CUDA)."""


@dataclass(frozen=True)
class CreateSettings:
    """The config sections a creation reads (the run config's `creation`, `tracking`, `avatar`, `refine`)."""

    creation: PersonIngestConfig
    tracking: TrackingConfig
    avatar: AvatarConfig
    refine: RefineConfig

    @classmethod
    def of(cls, cfg) -> CreateSettings:
        return cls(cfg.creation, cfg.tracking, cfg.avatar, cfg.refine)

    def step_config(self, step: str) -> dict:
        """The settings a step's outputs depend on (part of its inputs' fingerprint)."""
        sections = {"ingest": ("creation",), "track": ("tracking",), "avatar": ("avatar", "refine")}[step]
        chosen = {name: getattr(self, name).model_dump(mode="json") for name in sections}
        if step == "ingest":
            chosen["image_size"] = self.avatar.image_size
        return chosen


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _ingest(bundle: str, video: str, cfg) -> tuple[dict, dict]:
    from personalize.ingest import ingest_person

    person = ingest_person(video, cfg.avatar.image_size, cfg.creation)
    media.write_mp4(storage.join(bundle, "ingest/crop.mp4"), person.frames, fps=25.0, audio=person.audio, crf=14)
    storage.write_bytes(storage.join(bundle, "ingest/face.npz"),
                        _npz(lmk=person.lmk, blendshapes=person.blendshapes, found=person.found, boxes=person.boxes))
    storage.write_json(storage.join(bundle, "ingest/report.json"), person.report)
    outputs = {"crop": "ingest/crop.mp4", "face": "ingest/face.npz", "report": "ingest/report.json"}
    return outputs, {k: person.report[k] for k in ("frames", "usable_fraction", "face_px", "rotation")}


def _track(bundle: str, cfg, device: str) -> tuple[dict, dict]:
    from foundation.head import save_params
    from personalize.tracking import contact_sheet, track
    from render.video import write_png

    frames = media.read_video(storage.join(bundle, "ingest/crop.mp4"))
    with np.load(io.BytesIO(storage.read_bytes(storage.join(bundle, "ingest/face.npz")))) as face:
        lmk, blendshapes, found = face["lmk"], face["blendshapes"], face["found"]
    n = min(len(frames), len(lmk))
    result = track(frames[:n], lmk[:n], blendshapes[:n], found[:n], cfg.tracking, device=device)
    save_params(storage.join(bundle, "track/params.npz"), result.person)
    storage.write_bytes(storage.join(bundle, "track/appearance.npz"), _npz(texture=result.texture,
                                                                           detail=result.detail))
    write_png(storage.join(bundle, "track/sheet.png"), contact_sheet(frames[:n], result))
    storage.write_json(storage.join(bundle, "track/metrics.json"), result.metrics)
    outputs = {"params": "track/params.npz", "appearance": "track/appearance.npz", "sheet": "track/sheet.png",
               "metrics": "track/metrics.json"}
    return outputs, result.metrics


def _avatar(bundle: str, cfg, device: str, renderer: str) -> tuple[dict, dict]:
    from foundation.head import load_params
    from render.fit import fit_avatar, save_fit
    from render.video import write_png

    person = load_params(storage.join(bundle, "track/params.npz"), require_camera=True)
    frames = media.read_video(storage.join(bundle, "ingest/crop.mp4"))[:person.n_frames]
    avatar_cfg = cfg.avatar.model_copy(update={"backend": renderer if cfg.avatar.backend == "auto"
                                               else cfg.avatar.backend})
    result = fit_avatar(frames, person.params, person.camera, avatar_cfg, cfg.refine, device=device, progress=False)
    save_fit(result, storage.join(bundle, "avatar/avatar.pt"))
    outputs = {"avatar": "avatar/avatar.pt", "quality": "avatar/avatar.quality.json"}
    if result.sheet is not None:
        write_png(storage.join(bundle, "avatar/sheet.png"), result.sheet)
        outputs["sheet"] = "avatar/sheet.png"
    return outputs, result.quality.get("heldout", {})


def run_step(step: str, bundle: str, video: str, cfg: CreateSettings, inputs: str, s3: storage.S3Options,
             device: str, renderer: str) -> dict:
    """Body of a step's Ray task: run the step, write its outputs and record (returns the record as a dict)."""
    storage.configure(s3)
    started = time.perf_counter()
    if step == "ingest":
        outputs, metrics = _ingest(bundle, video, cfg)
    elif step == "track":
        outputs, metrics = _track(bundle, cfg, device)
    else:
        outputs, metrics = _avatar(bundle, cfg, device, renderer)
    record = StepRecord(step, inputs, outputs, {}, round(time.perf_counter() - started, 1), metrics)
    write_step(bundle, record)
    return record.__dict__


def create_replica(video: str, out: str, settings: CreateSettings, runtime: RuntimeConfig | None = None,
                   console: Console | None = None) -> dict:
    """Create (or resume) the replica of the person in `video` at the bundle folder `out`; returns a summary.

    Each step is one Ray task (resources from `STEP_CPUS`/`STEP_GPUS`); finished steps with unchanged inputs
    are skipped. Raises ReplicaError for a missing or rejected video (nothing of a later step is written).
    """
    video, out = storage.absolute(video), storage.absolute(out)  # Ray workers need not share our directory
    if not storage.exists(video):
        raise ReplicaError(video, "no such file")
    console = console or Console(stderr=True)
    resolved = resolve(runtime or RuntimeConfig())
    ray = init_ray(runtime)
    video_sha = sha256_of(video)
    records: list[StepRecord] = []
    summary = {"bundle": out, "steps": {}}
    previous = video_sha
    for step in STEPS:
        inputs = fingerprint({"after": previous, "config": settings.step_config(step)})
        record = finished_step(out, step, inputs)
        if record is None:
            gpus = STEP_GPUS[step] if resolved.device == "cuda" else 0
            task = ray.remote(run_step).options(num_cpus=STEP_CPUS[step], num_gpus=gpus, max_retries=0)
            console.print(f"  {step}: running (cpus {STEP_CPUS[step]}, gpus {gpus})", highlight=False)
            try:
                record = StepRecord(**ray.get(task.remote(step, out, video, settings, inputs, storage.s3_options(),
                                                          resolved.device, resolved.renderer)))
            except ray.exceptions.RayTaskError as err:
                cause = err.cause if isinstance(getattr(err, "cause", None), Exception) else err
                if isinstance(cause, ReplicaError):
                    raise cause from None
                raise
            summary["steps"][step] = {"status": "done", "seconds": record.seconds}
        else:
            summary["steps"][step] = {"status": "skipped", "seconds": record.seconds}
        console.print(f"  {step}: {summary['steps'][step]['status']} ({record.seconds:.1f}s) {record.metrics}",
                      highlight=False)
        records.append(record)
        previous = fingerprint(record.sha256)
    manifest = write_manifest(out, video, video_sha, records,
                              {step: settings.step_config(step) for step in STEPS})
    summary["metrics"] = manifest["metrics"]
    return summary
