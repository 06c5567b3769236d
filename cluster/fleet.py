"""`replica fleet`: the replicas of many people at once, every creation step a Ray task, all state in storage.

    replica fleet create avatars.jsonl --out s3://bucket/replicas
    replica fleet status s3://bucket/replicas

Each line of the JSONL names one person: `{"id": "ann", "video": "s3://…/ann.mp4", "config": {"avatar.iterations":
5000}}` (`config`: optional dotted overrides of the creation settings, for this avatar only). Avatar `id`'s bundle
is `<prefix>/<id>` (`personalize.bundle`), and the bundles are the fleet's only state. Per avatar, one *check*
task hashes the video and walks the finished steps (`finished_step`: same inputs, intact outputs); then each
unfinished step of `STEPS` runs as its own Ray task asking for that step's resources (`step_cpus`: one CPU
unless `runtime.step_cpus`; `STEP_GPUS`), the last one publishing `replica.json`. A complete bundle therefore
costs one check and no step; a partial one resumes at its next step; a step task that finds its own record
already written (a retry after a worker was lost just after the step finished) does not run it again. So
killing the driver and re-running duplicates no finished step, and the report counts steps run and skipped to
show it.

The fan-out is `cluster.fanout.fan_out`: at most `max_in_flight` avatars in progress, transient failures (storage,
lost workers) retried with exponential backoff, bad input (a `ReplicaError` about the video or the row) recorded
and never retried, a live bar. The driver streams the JSONL and keeps counters and the failed rows only (plus
the set of ids seen, to refuse a duplicate id), and writes `<prefix>/fleet-report.json` at the end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
from typing import Any, Callable, Iterator, Literal

from pydantic import Field, field_validator
from rich.console import Console

from cluster.create import STEP_GPUS, CreateSettings, after_step, run_step, step_cpus, step_inputs
from cluster.fanout import Call, Failure, Fault, RetryPolicy, fan_out
from cluster.runtime import RuntimeConfig, init_ray, resolve
from datasets import storage
from datasets.config import Section
from datasets.errors import ReplicaError
from personalize.bundle import MANIFEST, STEPS, StepRecord, finished_step, list_bundles, sha256_of, write_manifest
from personalize.finetune import check_foundation

REPORT = "fleet-report.json"
CHECK_CPUS = 1
"""CPUs of an avatar's check task (hashing the video, reading the step records)."""
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class FaultConfig(Section):
    """A failure injected into an avatar's first step, for chaos testing of the retry path."""

    kind: Literal["storage", "worker"] = "storage"
    """storage: the step's task raises a dropped-connection OSError before its work; worker: its worker
    process exits (Ray reports the worker lost)."""
    times: int = Field(1, ge=1)
    """Attempts that fail before the step runs normally."""


class FleetConfig(Section):
    """How `replica fleet create` schedules, retries and stages the creation of many replicas."""

    max_in_flight: int = Field(64, ge=1)
    """Avatars in progress at once (each runs one step at a time); bounds the driver's memory and queue."""
    retries: int = Field(3, ge=0)
    """Retries of a step that failed transiently (a storage error, a lost worker); bad input is never retried."""
    backoff_s: float = Field(2.0, ge=0)
    """Wait before the first retry (seconds), doubled for each further one."""
    backoff_max_s: float = Field(60.0, ge=0)
    """The longest wait between retries (seconds)."""
    until: str | None = None
    """Stop every avatar after this step (a staged fleet); None: every step, and publish replica.json."""
    faults: dict[str, FaultConfig] = {}
    """Chaos testing only: avatar id → a failure injected into its first step run. Empty in production."""

    @field_validator("until")
    @classmethod
    def _known_step(cls, value: str | None) -> str | None:
        if value is not None and value not in STEPS:
            raise ValueError(f"not a creation step ({', '.join(STEPS)})")
        return value

    def steps(self) -> tuple[str, ...]:
        """The steps each avatar runs, in order."""
        return STEPS if self.until is None else STEPS[:STEPS.index(self.until) + 1]


@dataclasses.dataclass(frozen=True)
class Avatar:
    """One line of the avatars file."""

    id: str
    video: str
    line: int
    config: dict


def parse_avatar(text: str, line: int, source: str) -> Avatar:
    """Parse line `line` of the avatars file `source` (ReplicaError naming `source:line` if it is malformed)."""
    where = f"{source}:{line}"
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReplicaError(where, f"not valid JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise ReplicaError(where, 'expected an object like {"id": "ann", "video": "ann.mp4"}')
    unknown = sorted(set(row) - {"id", "video", "config"})
    if unknown:
        raise ReplicaError(where, f"unknown key {unknown[0]!r} (keys: id, video, config)")
    avatar_id, video, config = row.get("id"), row.get("video"), row.get("config", {})
    if not isinstance(avatar_id, str) or not _ID.fullmatch(avatar_id):
        raise ReplicaError(where, f"id {avatar_id!r}: letters, digits, '.', '_' and '-' only (it names a folder)")
    if not isinstance(video, str) or not video:
        raise ReplicaError(where, "no video URL")
    if not isinstance(config, dict):
        raise ReplicaError(where, "config must be an object of dotted keys")
    return Avatar(avatar_id, storage.absolute(video), line, config)


def read_lines(url: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line of the avatars file, streamed."""
    with storage.open_read(url) as raw:
        for number, text in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), 1):
            if text.strip():
                yield number, text


def _for_workers(settings: CreateSettings) -> CreateSettings:
    """`settings` with the foundation animator's URL made absolute (Ray workers need not share our directory)."""
    if not settings.finetune.foundation:
        return settings
    return dataclasses.replace(settings, finetune=settings.finetune.model_copy(
        update={"foundation": storage.absolute(settings.finetune.foundation)}))


def _check(bundle: str, video: str, settings: CreateSettings, steps: tuple[str, ...]) -> dict:
    """Task: the video's sha256 and the records of the steps already finished with today's inputs, in order.

    When every step of a whole creation is finished but `replica.json` is missing (the driver died between the
    last step and publishing), publishes it.
    """
    if not storage.exists(video):
        raise ReplicaError(video, "no such file")
    video_sha = sha256_of(video)
    previous, records = video_sha, []
    for step in steps:
        record = finished_step(bundle, step, step_inputs(previous, settings, step))
        if record is None:
            break
        records.append(record)
        previous = after_step(previous, record)
    if len(records) == len(STEPS) and not storage.exists(storage.join(bundle, MANIFEST)):
        write_manifest(bundle, video, video_sha, records, {step: settings.step_config(step) for step in STEPS})
    return {"video_sha": video_sha, "previous": previous, "records": [r.__dict__ for r in records]}


def _step(step_fn: Callable, step: str, bundle: str, video: str, settings: CreateSettings, previous: str,
          device: str, renderer: str, publish: tuple[str, list[dict]] | None) -> dict:
    """Task: run one step (unless its record with these inputs is already there), then, given `publish`
    (the video's sha256 and the earlier steps' records), write `replica.json`."""
    inputs = step_inputs(previous, settings, step)
    record = finished_step(bundle, step, inputs)
    ran = record is None
    if ran:
        record = StepRecord(**step_fn(step, bundle, video, settings, inputs, storage.s3_options(), device, renderer))
    if publish is not None:
        video_sha, earlier = publish
        write_manifest(bundle, video, video_sha, [StepRecord(**r) for r in earlier] + [record],
                       {name: settings.step_config(name) for name in STEPS})
    return {"record": record.__dict__, "ran": ran}


class _Report:
    """The fleet's counters and failed rows, filled as avatars end; `as_json` is fleet-report.json."""

    def __init__(self, avatars: str, prefix: str, cfg: FleetConfig):
        self.head = {"avatars_file": avatars, "prefix": prefix,
                     "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "steps": list(cfg.steps()), "fleet": cfg.model_dump(mode="json")}
        self.counts = {"avatars": 0, "done": 0, "skipped": 0, "failed": 0}
        self.steps = {step: {"run": 0, "skipped": 0, "seconds": 0.0, "max_s": 0.0}
                      for step in cfg.steps()}
        self.failed: list[dict] = []

    def result(self, _index: int, result: dict) -> None:
        self.counts["avatars"] += 1
        self.counts["done" if result["ran"] else "skipped"] += 1
        for step in result["skipped"]:
            self.steps[step]["skipped"] += 1
        for step, seconds in result["ran"].items():
            row = self.steps[step]
            row["run"] += 1
            row["seconds"] = round(row["seconds"] + seconds, 1)
            row["max_s"] = max(row["max_s"], seconds)

    def failure(self, failure: Failure) -> None:
        self.counts["avatars"] += 1
        self.counts["failed"] += 1
        line, text = failure.item
        try:
            avatar_id = json.loads(text).get("id")
        except (json.JSONDecodeError, AttributeError):
            avatar_id = None
        self.failed.append({"line": line, "id": avatar_id, "step": failure.label or "row", "kind": failure.kind,
                            "attempts": failure.attempts, "reason": failure.error})

    def as_json(self, seconds: float, retries: dict) -> dict:
        for row in self.steps.values():
            row["mean_s"] = round(row["seconds"] / row["run"], 2) if row["run"] else None
        return {**self.head, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(seconds, 1), **self.counts,
                "steps_run": sum(r["run"] for r in self.steps.values()),
                "steps_skipped": sum(r["skipped"] for r in self.steps.values()),
                "retries": retries, "per_step": self.steps,
                "failures": sorted(self.failed, key=lambda row: row["line"])}


def run_fleet(avatars: str, prefix: str, settings_for: Callable[[dict], CreateSettings], cfg: FleetConfig,
              runtime: RuntimeConfig | None = None, console: Console | None = None, show_progress: bool = True,
              step_fn: Callable[..., dict] = run_step) -> dict:
    """Create (or resume) the replica of every avatar listed in the JSONL `avatars` under `prefix`; returns
    the report, also written to `<prefix>/fleet-report.json`.

    settings_for(config): the creation settings of an avatar whose row has these dotted overrides ({} for
    none; called once with {} up front); a ReplicaError from it fails that avatar as bad input.
    step_fn: the function each step task runs, with `cluster.create.run_step`'s signature and result (a
    benchmark passes a no-op to time the scheduling alone). Failed avatars are in the report; nothing of
    theirs stops the others.
    """
    avatars, prefix = storage.absolute(avatars), storage.absolute(prefix)  # Ray workers run elsewhere
    if not storage.exists(avatars):
        raise ReplicaError(avatars, "no such file")
    resolved = resolve(runtime or RuntimeConfig())
    ray = init_ray(runtime)
    chosen = (runtime or RuntimeConfig()).step_cpus
    cpus = step_cpus(lambda step: chosen or 1)  # one CPU: many avatars' steps side by side
    steps, seen = cfg.steps(), {}
    base_settings = _for_workers(settings_for({}))
    if "finetune" in steps:  # before any work: every avatar without its own foundation fine-tunes this one
        check_foundation(base_settings.finetune.foundation)
    base = ray.put(base_settings)  # shared by every avatar without overrides: put once
    total = sum(1 for _ in read_lines(avatars))
    report = _Report(avatars, prefix, cfg)

    def gpus(step: str) -> float:
        return STEP_GPUS[step] if resolved.device == "cuda" else 0

    def work(entry: tuple[int, str]):
        avatar = parse_avatar(entry[1], entry[0], avatars)
        first = seen.setdefault(avatar.id, avatar.line)
        if first != avatar.line:
            raise ReplicaError(f"{avatars}:{avatar.line}", f"duplicate id {avatar.id!r} (first on line {first})")
        settings: Any = _for_workers(settings_for(avatar.config)) if avatar.config else base
        bundle = storage.join(prefix, avatar.id)
        check = yield Call(_check, (bundle, avatar.video, settings, steps), "check", CHECK_CPUS)
        records, previous = check["records"], check["previous"]
        injected = cfg.faults.get(avatar.id)
        todo, skipped, ran = steps[len(records):], list(steps[:len(records)]), {}
        for step in todo:
            publish = (check["video_sha"], list(records)) if step == STEPS[-1] else None
            fault = Fault(injected.kind, injected.times) if injected is not None and step == todo[0] else None
            out = yield Call(_step, (step_fn, step, bundle, avatar.video, settings, previous, resolved.device,
                                     resolved.renderer, publish), step, cpus[step], gpus(step), fault)
            if out["ran"]:
                ran[step] = out["record"]["seconds"]
            else:
                skipped.append(step)
            records.append(out["record"])
            previous = after_step(previous, StepRecord(**out["record"]))
        return {"id": avatar.id, "ran": ran, "skipped": skipped}

    retry = RetryPolicy(cfg.retries, cfg.backoff_s, cfg.backoff_max_s)
    tally = fan_out(work, read_lines(avatars), "fleet", total=total, max_in_flight=cfg.max_in_flight, retry=retry,
                    on_result=report.result, on_failure=report.failure,
                    outcome=lambda result: "done" if result["ran"] else "skipped", runtime=runtime,
                    console=console, show_progress=show_progress)
    out = report.as_json(tally.elapsed(), dict(tally.retries))
    storage.write_json(storage.join(prefix, REPORT), out)
    return out


def fleet_status(prefix: str) -> dict:
    """A fleet's state from storage alone: bundles complete / partial (by last finished step) / empty, and
    the last report's counts and failures (None before a fleet has finished once)."""
    bundles = list_bundles(prefix)
    counts = {"complete": 0, "partial": 0, "empty": 0}
    partial_after: dict[str, int] = {}
    for row in bundles:
        counts[row["state"]] += 1
        if row["state"] == "partial":
            partial_after[row["last_step"]] = partial_after.get(row["last_step"], 0) + 1
    report_url = storage.join(prefix, REPORT)
    report = storage.read_json(report_url) if storage.exists(report_url) else None
    return {"prefix": prefix, "bundles": len(bundles), **counts, "partial_after": partial_after, "report": report}
