"""`replica create`: one person's video → a replica bundle, each step a Ray task with declared resources.

The steps run in order, each reading its inputs from the bundle folder and writing its outputs there
(`personalize.bundle`): **ingest** (checks, 16 kHz speech, a stable face crop and its landmarks —
`personalize.ingest`), **track** (head-model parameters for every frame, photometric refinement, contact
sheet — `personalize.tracking`), **voice** (the TTS pool ranked against the person's speech —
`personalize.voice`), **finetune** (the foundation animator fine-tuned on the person's own speech and tracked
parameters by a Ray Tune search, and their idle motion — `personalize.finetune`, `personalize.idle`),
**avatar** (the Gaussian avatar + refiner trained on the crop frames against the *tracked* meshes, keeping the
per-frame parameter corrections it learns — `render.fit`). A step whose record shows the same inputs (its
settings and every earlier step's outputs) and intact outputs is skipped, so a re-run after a crash resumes;
`replica.json` is written last.

The bundle then holds everything text → video needs: "voice/voice" (the chosen voice and prosody),
"finetune/animator" (an animator export), "finetune/idle" (`IdleStats`), "track/params", "avatar/avatar".
A synthetic person's video comes with its true parameters (`<stem>.params.npz`); each step then also records
how close it got to them (`personalize.groundtruth`) under its metrics' "truth"; the avatar step's "truth" is
the price of tracking: the held-out PSNR of a second avatar trained on the true parameters minus the bundle
avatar's (`price_of_tracking`; that avatar is measured, never shipped).
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from rich.console import Console

from cluster.runtime import RuntimeConfig, init_ray, largest_node_cpus, resolve, use_reserved_cpus
from datasets import media, storage
from datasets.errors import ReplicaError
from datasets.schema import FPS
from foundation.head import PersonParams
from foundation.models import RELEASE_FILES, release_info
from personalize.bundle import (STEPS, StepRecord, finished_step, fingerprint, progress_url, sha256_of,
                                write_manifest, write_step)
from personalize.finetune import FinetuneConfig, check_foundation
from personalize.groundtruth import tracking_errors, true_person, true_voice
from personalize.ingest import PersonIngestConfig
from personalize.tracking import TrackingConfig
from personalize.voice import VoiceConfig
from render.avatar import AvatarConfig
from render.refine import RefineConfig

STEP_CPUS = {"ingest": 1, "track": 1, "voice": 1, "finetune": 0, "avatar": 1}
STEP_GPUS = {"ingest": 0.0, "track": 0.25, "voice": 0.0, "finetune": 0.0, "avatar": 1.0}
"""Resources each step asks Ray for (GPUs only where the runtime resolves to CUDA); the CPUs are a fleet's
defaults, `step_cpus` sizes them. The finetune step only drives a Ray Tune search: its trials reserve the CPUs
and GPU fractions (`finetune.cpus_per_trial`, `gpus_per_trial`)."""


def step_cpus(cpus_of: Callable[[str], int]) -> dict[str, int]:
    """CPUs each step reserves: `cpus_of(step)` for a CPU step, none for the finetune step (its trials reserve
    their own)."""
    return {step: cpus_of(step) if cpus else 0 for step, cpus in STEP_CPUS.items()}


@dataclass(frozen=True)
class CreateSettings:
    """The config sections a creation reads (the run config's `creation`, `tracking`, `avatar`, `refine`,
    `voice`, `finetune`)."""

    creation: PersonIngestConfig
    tracking: TrackingConfig
    avatar: AvatarConfig
    refine: RefineConfig
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    @classmethod
    def of(cls, cfg) -> CreateSettings:
        return cls(cfg.creation, cfg.tracking, cfg.avatar, cfg.refine, cfg.voice, cfg.finetune)

    def step_config(self, step: str) -> dict:
        """The settings a step's outputs depend on (part of its inputs' fingerprint)."""
        sections = {"ingest": ("creation",), "track": ("tracking",), "voice": ("voice",), "finetune": ("finetune",),
                    "avatar": ("avatar", "refine")}[step]
        chosen = {name: getattr(self, name).model_dump(mode="json") for name in sections}
        if step == "ingest":  # the price of tracking only adds the avatar step's metrics
            chosen["creation"].pop("price_of_tracking")
            chosen["image_size"] = self.avatar.image_size
        if step == "avatar":
            chosen["price_of_tracking"] = self.creation.price_of_tracking
        if step == "finetune":  # the foundation export's bytes, not its URL, are what the outputs depend on
            chosen["finetune"]["foundation"] = _foundation_sha256(self.finetune.foundation)
        return chosen


def _foundation_sha256(url: str | None) -> str | None:
    """sha256 of the foundation animator fine-tuning starts from (None: the installed default release's, when
    there is one: a new release makes finished fine-tunes stale)."""
    if url:
        return _sha256_once(url)
    try:
        return release_info()["files"][RELEASE_FILES["animator"]]["sha256"]
    except ReplicaError:
        return None


@functools.lru_cache(maxsize=8)
def _sha256_once(url: str) -> str:
    """sha256 of a model file, read once per process (a fleet fingerprints many bundles against one foundation)."""
    return sha256_of(url)


def step_inputs(previous: str, settings: CreateSettings, step: str) -> str:
    """The fingerprint of a step's inputs: `previous` (the video's sha256 for the first step, else `after_step`'s
    link) with the step's settings. A step is skipped when its record carries the same fingerprint."""
    return fingerprint({"after": previous, "config": settings.step_config(step)})


def after_step(previous: str, record: StepRecord) -> str:
    """The chain's link once a step has finished: every earlier step's outputs, not only this one's.

    Steps read more than their predecessor's files — fine-tuning the tracked parameters two steps back, the
    avatar the crop four back — so a person re-tracked (new tracking settings) must be fine-tuned and trained
    again even when the voice step between them wrote the same file. (Chained on the last step's outputs alone,
    a re-run did skip both, with the new tracking in the bundle and the old fine-tune and avatar beside it.)
    """
    return fingerprint({"after": previous, "outputs": record.sha256})


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _face(bundle: str, *keys: str) -> list[np.ndarray]:
    """Arrays of the ingest step's `ingest/face.npz` (lmk, blendshapes, found, boxes), in the order asked."""
    with np.load(io.BytesIO(storage.read_bytes(storage.join(bundle, "ingest/face.npz")))) as face:
        return [face[key] for key in keys]


def _ingest(bundle: str, video: str, cfg) -> tuple[dict, dict]:
    from personalize.ingest import ingest_person

    person = ingest_person(video, cfg.avatar.image_size, cfg.creation)
    media.write_mp4(storage.join(bundle, "ingest/crop.mp4"), person.frames, fps=25.0, audio=person.audio, crf=14)
    storage.write_bytes(storage.join(bundle, "ingest/face.npz"),
                        _npz(lmk=person.lmk, blendshapes=person.blendshapes, found=person.found, boxes=person.boxes))
    storage.write_json(storage.join(bundle, "ingest/report.json"), person.report)
    outputs = {"crop": "ingest/crop.mp4", "face": "ingest/face.npz", "report": "ingest/report.json"}
    return outputs, {k: person.report[k] for k in ("frames", "used_s", "left_out_s", "usable_fraction", "face_px",
                                                    "rotation")}


def _track(bundle: str, video: str, cfg, device: str) -> tuple[dict, dict]:
    from foundation.head import save_params
    from personalize.tracking import contact_sheet, track
    from render.video import write_png

    frames = media.read_video(storage.join(bundle, "ingest/crop.mp4"))
    lmk, blendshapes, found = _face(bundle, "lmk", "blendshapes", "found")
    n = min(len(frames), len(lmk))
    result = track(frames[:n], lmk[:n], blendshapes[:n], found[:n], cfg.tracking, device=device)
    save_params(storage.join(bundle, "track/params.npz"), result.person)
    storage.write_bytes(storage.join(bundle, "track/appearance.npz"), _npz(texture=result.texture,
                                                                           detail=result.detail))
    write_png(storage.join(bundle, "track/sheet.png"), contact_sheet(frames[:n], result))
    storage.write_json(storage.join(bundle, "track/metrics.json"), result.metrics)
    outputs = {"params": "track/params.npz", "appearance": "track/appearance.npz", "sheet": "track/sheet.png",
               "metrics": "track/metrics.json"}
    metrics = dict(result.metrics)
    truth = true_person(video)
    if truth is not None:
        metrics["truth"] = tracking_errors(result.person, truth, _face(bundle, "boxes")[0], result.detail)
    return outputs, metrics


def _voice(bundle: str, video: str, cfg) -> tuple[dict, dict]:
    from personalize.voice import choose_voice

    wav = media.read_audio(storage.join(bundle, "ingest/crop.mp4"))
    choice = choose_voice(wav, cfg.voice, voice=cfg.voice.override)
    storage.write_json(storage.join(bundle, "voice/voice.json"), choice.to_json())
    ranking = choice.ranking
    metrics = {"voice": choice.voice, "candidate": choice.candidate.id, "overridden": choice.overridden,
               "candidates": len(ranking),
               "top3": [{"id": c.id, choice.rank_by: round(c.scores[choice.rank_by], 4)} for c in ranking[:3]]}
    truth = true_person(video)
    voice = true_voice(truth) if truth is not None else None
    if voice is not None:
        in_pool = voice in {c.voice for c in ranking}
        metrics["truth"] = {"voice": voice, "rank": choice.rank_of(voice) if in_pool else None}
    return {"voice": "voice/voice.json"}, metrics


def _finetune(bundle: str, video: str, cfg, device: str) -> tuple[dict, dict]:
    from foundation.head import load_params
    from foundation.models import save_export
    from personalize.finetune import PersonData, finetune_animator
    from personalize.idle import BLINK, fit_idle

    person = load_params(storage.join(bundle, "track/params.npz"))
    blendshapes = _face(bundle, "blendshapes")[0]
    lids = blendshapes[: len(person.params.expr), list(BLINK)].mean(axis=1)  # MediaPipe's eyeBlink scores
    idle = fit_idle(person.params, person.fps, lids)
    storage.write_json(storage.join(bundle, "finetune/idle.json"), idle.to_json())
    wav = media.read_audio(storage.join(bundle, "ingest/crop.mp4"))
    truth = true_person(video)
    data = PersonData(wav, person.params.as_dict(), truth.params.as_dict() if truth is not None else None)
    progress = storage.join(bundle, "finetune/progress.json")

    def on_result(rows: list[dict]) -> None:
        storage.write_json(progress, {"trials": rows})
        best = min(row["validation_lve_mm"] for row in rows)
        print(f"finetune: {len(rows)}/{cfg.finetune.trials} trials reporting, best validation LVE {best:.2f} mm",
              file=sys.stderr, flush=True)

    result = finetune_animator(data, cfg.finetune, storage.join(bundle, "finetune/search"), device,
                               on_result=on_result)
    save_export(result.export, storage.join(bundle, "finetune/animator.pt"))
    storage.write_json(storage.join(bundle, "finetune/search.json"), {"metrics": result.metrics,
                                                                       "trials": result.trials})
    metrics = {k: v for k, v in result.metrics.items() if not k.startswith("heldout_true")}
    if truth is not None:
        metrics["truth"] = {k: v for k, v in result.metrics.items() if k.startswith("heldout_true")}
    metrics["idle"] = {"blinks_per_min": round(60 * idle.blink_rate, 1),
                       "head_std_deg": [round(float(np.degrees(s)), 2) for s in idle.head_std]}
    outputs = {"animator": "finetune/animator.pt", "search": "finetune/search.json", "idle": "finetune/idle.json"}
    return outputs, metrics


def _avatar(bundle: str, video: str, cfg, device: str, renderer: str) -> tuple[dict, dict]:
    from foundation.head import load_params
    from render.fit import fit_avatar, save_fit
    from render.video import write_png

    person = load_params(storage.join(bundle, "track/params.npz"), require_camera=True)
    frames = media.read_video(storage.join(bundle, "ingest/crop.mp4"))[:person.n_frames]
    avatar_cfg = cfg.avatar.model_copy(update={"backend": renderer if cfg.avatar.backend == "auto"
                                               else cfg.avatar.backend})
    result = fit_avatar(frames, person.params, person.camera, avatar_cfg, cfg.refine, device=device, progress=True)
    save_fit(result, storage.join(bundle, "avatar/avatar.pt"))
    outputs = {"avatar": "avatar/avatar.pt", "quality": "avatar/avatar.quality.json"}
    if result.sheet is not None:
        write_png(storage.join(bundle, "avatar/sheet.png"), result.sheet)
        outputs["sheet"] = "avatar/sheet.png"
    metrics = dict(result.quality.get("heldout", {})) | {"iterations": avatar_cfg.iterations}
    if "refiner" in result.quality:
        metrics["refiner"] = result.quality["refiner"]
    truth = true_person(video) if cfg.creation.price_of_tracking else None
    if truth is not None and "splat" in metrics:
        boxes = _face(bundle, "boxes")[0]
        metrics["truth"] = price_of_tracking(video, truth, boxes[:person.n_frames], metrics["splat"], avatar_cfg,
                                             cfg.refine, device)
    return outputs, metrics


def price_of_tracking(video: str, truth: PersonParams, boxes: np.ndarray, tracked: dict, avatar_cfg: AvatarConfig,
                      refine_cfg: RefineConfig, device: str) -> dict:
    """What tracking costs the avatar: an avatar trained like the bundle's on the *true* parameters, its held-out
    splat PSNR/SSIM next to the bundle avatar's (`tracked`: its held-out "splat" numbers).

    The bundle's crop follows the head (a box per frame, `boxes` [F, 3]: x0, y0, side in source pixels) while the
    true camera is the source's, one pinhole for all frames. So the true-parameter avatar sees the source cut
    with ONE fixed box (the per-frame boxes' median), the true camera mapped through it exactly (f' = f·S/side,
    c' = (c − x0)·S/side), H.264-coded like `ingest/crop.mp4`. Both avatars hold out the same last frames; how
    far the bundle's boxes stray from the fixed one (`box_shift_crop_px_max`, in crop pixels) says how alike
    their framings are. Splats only (no refiner): the refiner would add its own noise to a one-number comparison.
    """
    import tempfile

    import torch

    from foundation.camera import Camera
    from personalize.ingest import cut_box
    from render.avatar_train import select_frames
    from render.fit import fit_avatar
    from render.video import scaled_camera

    started = time.perf_counter()
    size, box = avatar_cfg.image_size, np.median(boxes, axis=0)
    frames = np.stack([cut_box(rgb, box, size) for rgb, _ in zip(media.iter_video(video, fps=FPS), boxes)])
    n = min(len(frames), truth.n_frames)
    with tempfile.TemporaryDirectory() as folder:  # coded as the bundle's crop frames are
        media.write_mp4(f"{folder}/fixed.mp4", frames[:n], fps=FPS, crf=14)
        frames = media.read_video(f"{folder}/fixed.mp4", fps=FPS)[:n]
    info = media.probe(video)
    source = scaled_camera(truth.camera, info.width, info.height)
    scale = size / box[2]
    K = source.K.clone()
    K[:2, :2] *= scale
    K[:2, 2] = (K[:2, 2] - torch.as_tensor(box[:2], dtype=K.dtype)) * scale
    camera = Camera(source.viewmat, K, size, size)
    params = select_frames(truth.params, torch.arange(n))
    fit = fit_avatar(frames, params, camera, avatar_cfg, refine_cfg.model_copy(update={"enabled": False}),
                     device=device, progress=True)
    true = fit.quality.get("heldout", {}).get("splat")
    if true is None:
        return {}
    shift = float(np.abs(boxes - box).max())
    return {"psnr_db_true_params": true["psnr_db"], "ssim_true_params": true["ssim"],
            "psnr_db_tracked_params": tracked["psnr_db"], "ssim_tracked_params": tracked["ssim"],
            "price_of_tracking_db": round(true["psnr_db"] - tracked["psnr_db"], 3),
            "compared": "held-out splats (no refiner); true parameters on the source cut with the median crop box",
            "heldout_frames": fit.quality["frames"]["heldout"], "fixed_box": [round(float(v), 2) for v in box],
            "box_shift_src_px_max": round(shift, 2), "box_shift_crop_px_max": round(shift * scale, 2),
            "seconds": round(time.perf_counter() - started, 1)}


class _ProgressLines(io.TextIOBase):
    """A step task's stderr: the last progress line its bars print (`datasets.progress`: plain lines, at most one
    every few seconds off a terminal) is written to `steps/<step>.progress` for the driver to show while it waits;
    anything else (warnings) goes on to the real stderr, the worker's log."""

    PROGRESS = re.compile(r"^(ingest|track|voice|finetune|avatar|refiner)\b")

    def __init__(self, url: str, stream):
        self.url, self.stream, self._pending = url, stream, ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        progress = [line.strip() for line in lines if self.PROGRESS.match(line.strip())]
        for line in lines:
            if line.strip() and not self.PROGRESS.match(line.strip()):
                self.stream.write(line + "\n")
        if progress:
            storage.write_text(self.url, progress[-1])
        return len(text)

    def isatty(self) -> bool:
        return False


def run_step(step: str, bundle: str, video: str, cfg: CreateSettings, inputs: str, s3: storage.S3Options,
             device: str, renderer: str) -> dict:
    """Body of a step's Ray task: run the step, write its outputs and record (returns the record as a dict)."""
    storage.configure(s3)
    threads = use_reserved_cpus()
    started = time.perf_counter()
    with contextlib.redirect_stderr(_ProgressLines(progress_url(bundle, step), sys.stderr)):
        if step == "ingest":
            outputs, metrics = _ingest(bundle, video, cfg)
        elif step == "track":
            outputs, metrics = _track(bundle, video, cfg, device)
        elif step == "voice":
            outputs, metrics = _voice(bundle, video, cfg)
        elif step == "finetune":
            outputs, metrics = _finetune(bundle, video, cfg, device)
        else:
            outputs, metrics = _avatar(bundle, video, cfg, device, renderer)
    record = StepRecord(step, inputs, outputs, {}, round(time.perf_counter() - started, 1), metrics, threads)
    write_step(bundle, record)
    if storage.exists(progress_url(bundle, step)):
        storage.remove(progress_url(bundle, step))
    return record.__dict__


def _wait(ray, ref, bundle: str, step: str, console: Console, every_s: float = 5.0) -> dict:
    """The step task's result; meanwhile its latest progress line, whenever it changes."""
    shown = None
    while not ray.wait([ref], timeout=every_s)[0]:
        try:
            line = storage.read_text(progress_url(bundle, step)).strip()
        except ReplicaError:  # not written yet, or removed as the step finished
            continue
        if line and line != shown:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
            shown = line
    return ray.get(ref)


def create_replica(video: str, out: str, settings: CreateSettings, runtime: RuntimeConfig | None = None,
                   console: Console | None = None) -> dict:
    """Create (or resume) the replica of the person in `video` at the bundle folder `out`; returns a summary.

    Each step is one Ray task (GPUs from `STEP_GPUS`; the steps run one after another, so each CPU step reserves
    the CPUs of the largest node that has its GPUs, unless `runtime.step_cpus` says otherwise: many people at
    once are a fleet's work); finished steps with unchanged inputs are skipped. Raises ReplicaError for a missing
    or rejected video (nothing of a later step is written).
    """
    video, out = storage.absolute(video), storage.absolute(out)  # Ray workers need not share our directory
    if not storage.exists(video):
        raise ReplicaError(video, "no such file")
    # Before any heavy work; None becomes the default release's animator. Ray workers need not share our directory.
    foundation = storage.absolute(check_foundation(settings.finetune.foundation))
    settings = replace(settings, finetune=settings.finetune.model_copy(update={"foundation": foundation}))
    console = console or Console(stderr=True)
    resolved = resolve(runtime or RuntimeConfig())
    ray = init_ray(runtime)
    gpus = {step: STEP_GPUS[step] if resolved.device == "cuda" else 0 for step in STEPS}
    chosen = (runtime or RuntimeConfig()).step_cpus  # else a whole node: the steps run one after another
    cpus = step_cpus(lambda step: chosen or largest_node_cpus(ray, gpus[step]))
    video_sha = sha256_of(video)
    records: list[StepRecord] = []
    summary = {"bundle": out, "steps": {}}
    previous = video_sha
    for step in STEPS:
        inputs = step_inputs(previous, settings, step)
        record = finished_step(out, step, inputs)
        if record is None:
            task = ray.remote(run_step).options(num_cpus=cpus[step], num_gpus=gpus[step], max_retries=0)
            console.print(f"  {step}: running (cpus {cpus[step]}, gpus {gpus[step]})", highlight=False)
            try:
                ref = task.remote(step, out, video, settings, inputs, storage.s3_options(), resolved.device,
                                  resolved.renderer)
                record = StepRecord(**_wait(ray, ref, out, step, console))
            except ray.exceptions.RayTaskError as err:
                cause = err.cause if isinstance(getattr(err, "cause", None), Exception) else err
                if isinstance(cause, ReplicaError):
                    raise cause from None
                raise
            status = "done"
        else:
            status = "skipped"
        summary["steps"][step] = {"status": status, "seconds": record.seconds, "threads": record.threads}
        console.print(f"  {step}: {status} ({record.seconds:.1f}s)", highlight=False)
        records.append(record)
        previous = after_step(previous, record)
    manifest = write_manifest(out, video, video_sha, records,
                              {step: settings.step_config(step) for step in STEPS})
    summary["metrics"] = manifest["metrics"]
    for line in quality_lines(summary["metrics"]):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    return summary


FEW_AVATAR_STEPS = 1000
"""Below this many avatar steps (the tiny preset's 300 until it took 1000) a real person's avatar is their average
face: the summary says so (docs/create.md, "On real footage": the Pexels avatar's eyes close after 1000 steps, not
after 300)."""


def quality_lines(metrics: dict) -> list[str]:
    """The creation's quality in a few lines (per step, and against the truth for a synthetic person)."""
    lines = []
    ingest, track, voice = metrics.get("ingest", {}), metrics.get("track", {}), metrics.get("voice", {})
    tune, avatar = metrics.get("finetune", {}), metrics.get("avatar", {})
    if ingest:
        line = (f"ingest: {ingest['frames']} frames, face found in {100 * ingest['usable_fraction']:.0f}%, "
                f"{ingest['face_px']:.0f} px tall")
        if ingest.get("left_out_s"):
            line += (f"; only the first {ingest['used_s']:.0f} s were used, {ingest['left_out_s']:.0f} s left out "
                     "(creation.max_seconds)")
        lines.append(line)
    if track:
        line = f"tracking: landmarks {track['landmark_px_mean']:.2f} px from MediaPipe's"
        if "truth" in track:
            t = track["truth"]
            line += (f"; vs truth: face vertices {t['vertex_error_iod_pct']:.2f}% IOD, expression corr "
                     f"{t['expression_corr']:.2f}, landmarks {t['landmark_px_vs_truth']:.2f} px")
        lines.append(line)
    if voice:
        top = ", ".join(f"{c['id']} {next(v for k, v in c.items() if k != 'id'):.3f}" for c in voice["top3"])
        line = f"voice: {voice['candidate']}{' (override)' if voice['overridden'] else ''} of {voice['candidates']}"
        line += f" candidates (top 3: {top})"
        if voice.get("truth"):
            truth = voice["truth"]
            line += (f"; true voice {truth['voice']} ranks {truth['rank']}" if truth["rank"] is not None
                     else f"; the true voice {truth['voice']} is not a candidate")
        lines.append(line)
    if tune:
        line = (f"fine-tune: held-out LVE {tune['heldout_lve_mm_before']:.2f} → {tune['heldout_lve_mm_after']:.2f} mm"
                f" ({tune['shipped']}; {tune['trials']} trials, {tune['stopped_early']} stopped early)")
        if tune.get("truth"):
            t = tune["truth"]
            line += (f"; vs truth {t['heldout_true_lve_mm_before']:.2f} → {t['heldout_true_lve_mm_after']:.2f} mm"
                     + (f" (the tracked targets themselves: {t['heldout_true_lve_mm_tracked']:.2f} mm)"
                        if "heldout_true_lve_mm_tracked" in t else ""))
        lines.append(line)
        lines.append(f"idle: {tune['idle']['blinks_per_min']} blinks/min, head sway std "
                     + "/".join(f"{d:.1f}" for d in tune["idle"]["head_std_deg"]) + "°")
    if "splat" in avatar:
        line = f"avatar: held-out PSNR {avatar['splat']['psnr_db']:.2f} dB, SSIM {avatar['splat']['ssim']:.3f}"
        if avatar.get("truth"):
            t = avatar["truth"]
            line += (f"; with the true parameters {t['psnr_db_true_params']:.2f} dB (the price of tracking: "
                     f"{t['price_of_tracking_db']:.2f} dB; crop boxes within {t['box_shift_crop_px_max']:.1f} px "
                     "of the fixed one)")
        if "refiner" in avatar:
            verdict = avatar["refiner"]
            line += (f"; refiner {'kept' if verdict['kept'] else 'dropped'} "
                     f"({verdict['heldout_psnr_gain_db']:+.3f} dB on held-out frames)")
        lines.append(line)
        steps = avatar.get("iterations")
        if steps is not None and steps < FEW_AVATAR_STEPS and not avatar.get("truth"):
            lines.append(f"avatar: trained for only {steps} steps — a real person's avatar then shows their average "
                         "face and does not close its eyes; use --set avatar.iterations=2000 (minutes on a CPU at "
                         "64²) or -c cluster on a GPU")
    return lines
