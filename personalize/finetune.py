"""Fine-tuning: the foundation animator adapted to one person's speaking style on their own video.

The data is the person's speech (the crop's 16 kHz audio) and their tracked parameters (25 fps), split in time:
the first frames train, the next `validation_fraction` of them choose among trials, and the last
`heldout_fraction` (15 %) are held out for the before/after number nobody tuned on. The loss is pre-training's
own (`foundation.training.AnimatorObjective`: coefficients, mouth-weighted vertices, velocities, the face posed
with the person's tracked identity and head pose), on random windows of the training frames.

A Ray Tune search over learning rate (log-uniform), steps and which layers train — `all` (encoder and animator),
`animator` (encoder frozen) or `heads` (only the animator's input projection and output heads: a cheap adapter)
— with ASHA stopping trials whose validation LVE lags at each rung. Trials get `cpus_per_trial` CPUs and, on
CUDA, `gpus_per_trial` of a GPU each, so a cluster packs several per GPU.

Why each trial is a Tune function trainable running this in-process loop, not pre-training's `TorchTrainer`
(`foundation.training.build_trainer`, which Tune can drive the same way): a person's data is minutes of audio
that one process holds in memory, and a trial is seconds to a few minutes of one worker. A `TorchTrainer` per
trial adds a Train controller, a worker group, a DeepSpeed engine and shards written for the loader — tens of
seconds of start-up per trial, more than the trial itself on the 2-core machine the suite runs on, for nothing
data parallelism would buy at this size. The model, its loss and the export are pre-training's.

`finetune_animator` returns the best trial's export (or the foundation's when no trial beats it on validation:
fine-tuning never ships something worse than it started from), the trial table and the before/after LVE.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
from pydantic import Field

from datasets import storage
from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.schema import FPS
from foundation.animation.model import AnimatorConfig
from foundation.audio.features import log_mel
from foundation.evaluation.metrics import lip_vertex_error
from foundation.head import FaceParams
from foundation.models import load_animator, load_exported, release_url, speech_to_face

Layers = Literal["all", "animator", "heads"]
SAMPLES_PER_FRAME = 16000 // FPS
PARAM_KEYS = ("expr", "jaw", "neck", "rot", "trans")
CONTEXT_FRAMES = 50
"""Frames of speech before the validation span the animator hears when it is scored (its receptive field is
far shorter; the whole recording would cost attention quadratic in its length)."""


class FinetuneConfig(Section):
    """How the foundation animator is fine-tuned to a person (a Ray Tune search with ASHA)."""

    foundation: str | None = None
    """The pre-trained animator to start from (an animator `model.pt` URL; `replica create --animator`); None: the
    default foundation release that ships with the package (`foundation.models.release_url`)."""
    heldout_fraction: float = Field(0.15, gt=0, lt=0.5)
    """The video's last frames held out for the before/after LVE (never trained or tuned on)."""
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    """Frames before the held-out tail that rank the trials (ASHA and the final choice)."""
    trials: int = Field(4, ge=1)
    """Trials sampled from the search space."""
    lr: tuple[float, float] = (1e-4, 3e-3)
    """Learning-rate range, sampled log-uniformly."""
    steps: list[int] = Field(default_factory=lambda: [100, 200, 400], min_length=1)
    """Optimizer steps a trial may run (a choice); ASHA may stop it sooner."""
    layers: list[Layers] = Field(default_factory=lambda: ["all", "animator", "heads"], min_length=1)
    """Which weights a trial trains (a choice): all, animator (encoder frozen), heads (input and output layers)."""
    report_every: int = Field(25, ge=1)
    """Steps between a trial's validation reports (ASHA's time unit; its first rung)."""
    window_s: float = Field(2.0, gt=0)
    """Seconds of speech per training window."""
    batch_size: int = Field(8, ge=1)
    """Windows per step."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout inside the animator while fine-tuning."""
    cpus_per_trial: float = Field(1.0, gt=0)
    """CPUs each trial reserves."""
    gpus_per_trial: float = Field(0.25, ge=0, le=1)
    """Fraction of a GPU each trial reserves on CUDA (several trials share one GPU)."""
    max_concurrent: int = Field(2, ge=1)
    """Trials running at once."""
    seed: int = 0
    """Seeds the search's sampling and every trial's windows and initial dropout."""


@dataclass
class PersonData:
    """One person's fine-tuning data.

    wav: [T] float32 speech at 16 kHz, sample 640·f starting frame f; params: expr [F, 52], jaw/neck/rot/trans
    [F, 3] (radians, metres), shape [S] — the tracked parameters; truth: the same for the true parameters of
    a synthetic person (None for real footage).
    """

    wav: np.ndarray
    params: dict[str, np.ndarray]
    truth: dict[str, np.ndarray] | None = None

    def writable(self) -> "PersonData":
        """A copy whose arrays torch may wrap: a trial receives its data from Ray's object store read-only."""
        return PersonData(np.array(self.wav), {k: np.array(v) for k, v in self.params.items()},
                          None if self.truth is None else {k: np.array(v) for k, v in self.truth.items()})

    @property
    def n_frames(self) -> int:
        return min(len(self.params["expr"]), len(self.wav) // SAMPLES_PER_FRAME)

    def spans(self, cfg: FinetuneConfig) -> dict[str, tuple[int, int]]:
        """Frame ranges [start, end) of "train", "validation" and "heldout"."""
        n = self.n_frames
        heldout = max(1, round(cfg.heldout_fraction * n))
        validation = max(1, round(cfg.validation_fraction * n))
        if n - heldout - validation < 2:
            raise ReplicaError(f"{n} tracked frames", "too few to fine-tune on with a held-out tail")
        return {"train": (0, n - heldout - validation), "validation": (n - heldout - validation, n - heldout),
                "heldout": (n - heldout, n)}


def _windows(data: PersonData, end: int, frames: int, count: int, rng: np.random.Generator) -> dict:
    """A training batch of `count` random windows of `frames` frames inside frames [0, end), in the loader's
    layout (`mel` [B, 4·frames, n_mels] is added by the caller)."""
    frames = min(frames, end)
    starts = rng.integers(0, end - frames + 1, count)
    wav = np.stack([data.wav[s * SAMPLES_PER_FRAME:(s + frames) * SAMPLES_PER_FRAME] for s in starts])
    mm = {k: torch.as_tensor(np.stack([data.params[k][s:s + frames] for s in starts])) for k in PARAM_KEYS}
    mm["shape"] = torch.as_tensor(data.params["shape"])[None].expand(count, -1)
    return {"keys": [f"w{s}" for s in starts], "wav": torch.as_tensor(wav), "mm": mm,
            "frames_len": torch.full((count,), frames)}


class Scorer:
    """LVE (mm) of predicted mouths against reference parameters on frame spans, as the evaluation measures it:
    the prediction's expression and jaw posed with the reference's identity and head pose."""

    def __init__(self, head, reference: dict[str, np.ndarray], spans: dict[str, tuple[int, int]]):
        self.head, self.spans = head, spans
        self.reference = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in reference.items()}
        self.truth = {name: self.posed(self.reference, lo, hi) for name, (lo, hi) in spans.items()}

    def posed(self, params: dict[str, torch.Tensor], lo: int, hi: int) -> torch.Tensor:
        """Vertices [hi - lo, V, 3] of frames [lo, hi): `params`' expression and jaw (indexed by frame) on the
        reference's identity and head pose."""
        device = self.head.template.device
        shape = self.reference["shape"].to(device).expand(hi - lo, -1)
        pose = {k: self.reference[k][lo:hi].to(device) for k in ("neck", "rot", "trans")}
        mouth = {k: params[k][lo:hi].to(device) for k in ("expr", "jaw")}
        return self.head(FaceParams(shape=shape, **mouth, **pose))

    @torch.no_grad()
    def __call__(self, pred: dict[str, torch.Tensor], first: int) -> dict[str, float]:
        """pred: expr [F', 52], jaw [F', 3] for frames from `first` on (covering the spans). Returns {span: LVE mm}."""
        shifted = {k: torch.cat([v.new_zeros(first, *v.shape[1:]), v]) for k, v in pred.items()}
        return {name: 1000 * lip_vertex_error(self.posed(shifted, lo, hi).cpu(), self.truth[name].cpu(),
                                              self.head.mouth_vertex_ids.cpu())
                for name, (lo, hi) in self.spans.items()}


def scored_from(spans: dict[str, tuple[int, int]]) -> int:
    """The first frame whose speech the animator hears when it is scored on validation and held-out."""
    return max(0, spans["validation"][0] - CONTEXT_FRAMES)


@torch.no_grad()
def predict(objective, data: PersonData, first: int) -> dict[str, torch.Tensor]:
    """The objective's animator (in eval mode, then back) on the speech of frames [first, F): expr [F - first, 52],
    jaw [F - first, 3] …"""
    was_training = objective.training
    objective.eval()
    device = next(objective.parameters()).device
    wav = data.wav[first * SAMPLES_PER_FRAME:data.n_frames * SAMPLES_PER_FRAME]
    mel = log_mel(torch.as_tensor(wav, device=device)[None], objective.features)
    out = speech_to_face(objective.encoder, objective.animator, mel)
    objective.train(was_training)
    return {k: v[0] for k, v in out.items()}


def load_objective(foundation: str, layers: Layers, cfg: FinetuneConfig, device: str):
    """Pre-training's animator objective started from the foundation export, with only `layers` trainable."""
    from foundation.training import build_objective

    objective = build_objective("animator", {"animator": AnimatorConfig(finetune_encoder=layers == "all",
                                                                        dropout=cfg.dropout).model_dump(),
                                             "mean_face": {}}, init_from=foundation)
    if layers == "heads":
        objective.animator.requires_grad_(False)
        for module in (objective.animator.input, objective.animator.expr, *objective.animator.pose.values()):
            module.requires_grad_(True)
    return objective.to(device)


def check_foundation(url: str | None) -> str:
    """The foundation animator's URL (None: the default release's, shipped with the package), checked to be an
    animator export (one-line errors otherwise)."""
    if not url:
        url = release_url("animator")
    if load_exported(url)["kind"] != "animator":
        raise ReplicaError(url, "is not an animator export (fine-tuning starts from a pre-trained animator)")
    return url


def train_trial(trial: dict, data: PersonData, foundation: str, cfg: FinetuneConfig, device: str,
                report: Callable[[dict, dict], None]) -> None:
    """One trial: `trial["steps"]` AdamW steps at `trial["lr"]` on `trial["layers"]`, calling
    `report(metrics, export)` every `report_every` steps and at the end (metrics: step, loss, LVE per span)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    objective = load_objective(foundation, trial["layers"], cfg, device).train()
    spans = data.spans(cfg)
    scorer = Scorer(objective.head, data.params, {k: spans[k] for k in ("validation", "heldout")})
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=trial["lr"], weight_decay=0.0)
    frames = max(4, round(cfg.window_s * FPS))
    for step in range(1, trial["steps"] + 1):
        batch = _windows(data, spans["train"][1], frames, cfg.batch_size, rng)
        batch["mel"] = log_mel(batch.pop("wav").to(device), objective.features)
        batch["mel_len"] = torch.full((cfg.batch_size,), batch["mel"].shape[1], device=device)
        batch["frames_len"] = batch["frames_len"].to(device)
        batch["mm"] = {k: v.to(device) for k, v in batch["mm"].items()}
        loss, _ = objective(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        if step % cfg.report_every == 0 or step == trial["steps"]:
            lve = scorer(predict(objective, data, scored_from(spans)), scored_from(spans))
            report({"step": step, "loss": float(loss.detach()), **{f"{k}_lve_mm": v for k, v in lve.items()}},
                   objective.export())


def _tune_trainable(trial: dict, data: PersonData, foundation: str, cfg_json: str, device: str) -> None:
    import ray.tune
    from ray.tune import Checkpoint

    from foundation.models import save_export

    def report(metrics: dict, export: dict) -> None:
        with tempfile.TemporaryDirectory() as folder:
            save_export(export, f"{folder}/model.pt")
            ray.tune.report(metrics, checkpoint=Checkpoint.from_directory(folder))

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a "Checkpoint successfully created" per report
    train_trial(trial, data.writable(), foundation, FinetuneConfig.model_validate_json(cfg_json), device, report)


@dataclass
class Finetuned:
    """What `finetune_animator` found: the export to ship, the trial table and the before/after numbers."""

    export: dict
    """The animator export shipped in the bundle (the best trial's, or the foundation's)."""
    trials: list[dict]
    """One row per trial: its config, last step, LVE per span, whether ASHA stopped it, its status."""
    metrics: dict
    """LVE (mm) before/after on validation and held-out (and against true parameters when known), what shipped."""


def finetune_animator(data: PersonData, cfg: FinetuneConfig, work_url: str, device: str = "cpu",
                      on_result: Callable[[list[dict]], None] | None = None) -> Finetuned:
    """Search fine-tuning settings with Ray Tune + ASHA on a running Ray; ship the best trial if it beats the
    foundation on validation.

    work_url: a folder every node can reach (local path or s3://) for the trials' checkpoints, emptied first
    (a killed search starts over) and removed at the end. on_result(trials): sees the trial table after every
    report (progress).
    """
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    foundation = check_foundation(cfg.foundation)
    spans = data.spans(cfg)
    start = load_objective(foundation, "all", cfg, "cpu")  # the driver holds no GPU; only the trials do
    first = scored_from(spans)
    before_pred = predict(start, data, first)
    before = Scorer(start.head, data.params, {k: spans[k] for k in ("validation", "heldout")})(before_pred, first)
    trainable = ray.tune.with_parameters(_tune_trainable, data=data, foundation=foundation,
                                         cfg_json=cfg.model_dump_json(), device=device)
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial if device == "cuda" else 0}
    space = {"lr": ray.tune.loguniform(*cfg.lr), "steps": ray.tune.choice(cfg.steps),
             "layers": ray.tune.choice(cfg.layers)}
    callbacks = [_progress(on_result)] if on_result else []
    _remove(work_url)
    # Tune's console output stays out of `replica create`'s (its progress lines come from `on_result`):
    # every trial report carries a checkpoint (ASHA may pause or stop the trial after it), and with one kept, Tune
    # snapshots its experiment state after each and warns each time that this "may become a bottleneck" (three
    # lines per report, for a few KiB written; 0 is Tune's documented off); and Tune's default output engine
    # prints its configuration table and a TensorBoard hint even at verbose=0, the older one honours it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    filesystem, storage_path = storage.arrow_filesystem(work_url)
    race = _VanishedTempFile()
    state_log = logging.getLogger("ray.tune.execution.experiment_state")
    state_log.addFilter(race)
    try:
        tuner = ray.tune.Tuner(
            ray.tune.with_resources(trainable, resources), param_space=space,
            tune_config=ray.tune.TuneConfig(
                metric="validation_lve_mm", mode="min", num_samples=cfg.trials,
                reuse_actors=True,  # the limit goes to the generator: Tune ignores `max_concurrent_trials` for one
                search_alg=BasicVariantGenerator(random_state=cfg.seed, max_concurrent=cfg.max_concurrent),
                scheduler=ASHAScheduler(time_attr="step", max_t=max(cfg.steps), grace_period=cfg.report_every,
                                        reduction_factor=2)),
            run_config=ray.tune.RunConfig(name="search", storage_path=storage_path, storage_filesystem=filesystem,
                                          verbose=0, callbacks=callbacks,
                                          checkpoint_config=ray.tune.CheckpointConfig(num_to_keep=1)))
        results = tuner.fit()
        trials = [_row(result) for result in results]
        finished = [r for r in results if r.error is None and r.checkpoint is not None]
        if not finished:
            raise ReplicaError("finetune", f"every trial failed (first error: {results[0].error})")
        best = min(finished, key=lambda r: r.metrics["validation_lve_mm"])
        improved = best.metrics["validation_lve_mm"] < before["validation"]
        with best.checkpoint.as_directory() as folder:
            shipped_url = f"{folder}/model.pt"
            export = torch.load(shipped_url, map_location="cpu", weights_only=False) if improved else start.export()
            truth = {}
            if data.truth is not None:
                truth = _truth_lve(data, before_pred, load_animator(shipped_url) if improved else None, spans)
    finally:
        state_log.removeFilter(race)
        _remove(work_url)
    metrics = {"shipped": "best trial" if improved else "foundation (no trial beat it on validation)",
               "trials": len(trials), "stopped_early": sum(t["stopped_early"] for t in trials),
               "best_trial": {k: best.config[k] for k in ("lr", "steps", "layers")},
               **{f"{span}_lve_mm_before": round(before[span], 3) for span in before},
               **{f"{span}_lve_mm_after": round(best.metrics[f"{span}_lve_mm"] if improved else before[span], 3)
                  for span in before}, **truth}
    return Finetuned(export, trials, metrics)


class _VanishedTempFile(logging.Filter):
    """Drops Tune's "Saving experiment state to storage ... failed" error when all that failed is the upload of a
    temporary file that was renamed while it was being copied.

    A forced experiment snapshot (one after every trial checkpoint, with one checkpoint kept) writes the new state
    (a `.<uuid>-tmp-...json`, then renamed) *before* waiting for the previous upload of the same folder, and that
    upload can list the temporary file and then not find it: a 25-line traceback in `replica create`'s output,
    about a file whose renamed version the next upload carries (Tune writes everything once more at the end).
    Any other failure to save the state is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, FileNotFoundError) and "-tmp-" in str(error)
                    and record.getMessage().startswith("Saving experiment state"))


def _remove(url: str) -> None:
    if storage.exists(url):
        storage.remove(url, recursive=True)


def _truth_lve(data: PersonData, before_pred: dict, shipped, spans: dict[str, tuple[int, int]]) -> dict:
    """Held-out LVE (mm) against a synthetic person's true parameters, before and after (`shipped`: the
    fine-tuned `AnimatorModel`, None when the foundation shipped), and of the tracked parameters themselves:
    fine-tuning learns them, so where they are farther from the truth than the foundation, it moves away too."""
    from foundation.head import default_head_model

    first = scored_from(spans)
    scorer = Scorer(default_head_model(), data.truth, {"heldout": spans["heldout"]})
    before = scorer({k: v.cpu() for k, v in before_pred.items()}, first)["heldout"]
    tracker = scorer({k: torch.as_tensor(data.params[k][first:data.n_frames]) for k in ("expr", "jaw")},
                     first)["heldout"]
    after = before
    if shipped is not None:
        wav = data.wav[first * SAMPLES_PER_FRAME:data.n_frames * SAMPLES_PER_FRAME]
        with torch.no_grad():
            mel = log_mel(torch.as_tensor(wav)[None], shipped.features)
            pred = speech_to_face(shipped.encoder, shipped.animator, mel)
        after = scorer({k: v[0] for k, v in pred.items()}, first)["heldout"]
    return {"heldout_true_lve_mm_before": round(before, 3), "heldout_true_lve_mm_after": round(after, 3),
            "heldout_true_lve_mm_tracked": round(tracker, 3)}


def _row(result) -> dict:
    metrics = result.metrics or {}
    steps = result.config.get("steps")
    return {"lr": result.config.get("lr"), "steps": steps, "layers": result.config.get("layers"),
            "last_step": metrics.get("step"),
            **{k: round(metrics[k], 3) for k in ("loss", "validation_lve_mm", "heldout_lve_mm") if k in metrics},
            "stopped_early": bool(metrics.get("step") and metrics["step"] < steps),
            "status": "error" if result.error else "done"}


def _progress(on_result: Callable[[list[dict]], None]):
    """A Tune callback handing the trial table to `on_result` after every report (the step's progress file)."""
    import ray.tune

    class Progress(ray.tune.Callback):
        def __init__(self):
            self.rows: dict[str, dict] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.rows[trial.trial_id] = {"trial": trial.trial_id, **{k: trial.config[k] for k in ("lr", "steps",
                                                                                                  "layers")},
                                         "step": result.get("step"),
                                         "validation_lve_mm": round(result["validation_lve_mm"], 3)}
            on_result(list(self.rows.values()))

    return Progress()
