"""The replica bundle: one person's replica as a folder of artifacts on storage, `replica.json` written last.

    <bundle>/
      steps/<step>.json      one record per finished step: its inputs' fingerprint, outputs with sha256, seconds
      steps/<step>.progress  the running step's latest progress line (removed when it finishes)
      ingest/ track/ voice/  the steps' artifacts (crop video, params.npz, texture, voice.json, animator.pt,
      finetune/ avatar/      idle.json, avatar.pt, sheets, JSON)
      replica.json           written last: versions, the input video's hash, every artifact's URL and sha256,
                             metrics and per-step timings — a bundle without it is partial

A step is skipped when its record exists, its inputs' fingerprint is unchanged and its outputs still hash as
recorded, so re-running a creation after a crash resumes at the first unfinished step. `verify` re-hashes every
artifact; `list_bundles` tells complete from partial bundles (and the last finished step) from storage alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from datasets import storage
from datasets.errors import ReplicaError

MANIFEST = "replica.json"
BUNDLE_VERSION = 1
STEPS = ("ingest", "track", "voice", "finetune", "avatar")
"""The creation steps in order."""


def sha256_of(url: str) -> str:
    """Hex sha256 of the object at `url` (streamed)."""
    digest = hashlib.sha256()
    with storage.open_read(url) as f:
        for block in iter(lambda: f.read(8 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(obj) -> str:
    """A short stable hash of any JSON-able value (a step's inputs and config)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StepRecord:
    """What a finished step wrote: `outputs` maps artifact names to paths relative to the bundle."""

    step: str
    inputs: str
    outputs: dict[str, str]
    sha256: dict[str, str]
    seconds: float
    metrics: dict = field(default_factory=dict)
    threads: int = 0
    """torch threads the step computed with (its reserved CPUs; 0 in records written before they were kept)."""


def step_url(bundle: str, step: str) -> str:
    return storage.join(bundle, "steps", f"{step}.json")


def write_step(bundle: str, record: StepRecord) -> None:
    """Hash the step's outputs and record the step (after its outputs are written)."""
    record.sha256 = {name: sha256_of(storage.join(bundle, rel)) for name, rel in record.outputs.items()}
    storage.write_json(step_url(bundle, record.step), record.__dict__)


def finished_step(bundle: str, step: str, inputs: str) -> StepRecord | None:
    """The step's record if it finished with these inputs and its outputs are intact, else None."""
    url = step_url(bundle, step)
    if not storage.exists(url):
        return None
    record = StepRecord(**storage.read_json(url))
    if record.inputs != inputs:
        return None
    for name, rel in record.outputs.items():
        target = storage.join(bundle, rel)
        if not storage.exists(target) or sha256_of(target) != record.sha256.get(name):
            return None
    return record


def tool_versions() -> dict[str, str]:
    """Versions of replica and the libraries a replica's artifacts depend on."""
    out = {}
    for dist in ("replica", "torch", "mediapipe", "ray"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def write_manifest(bundle: str, video: str, video_sha256: str, records: list[StepRecord], config: dict) -> dict:
    """Publish a bundle: `replica.json` listing every artifact with its sha256 (written last, atomically)."""
    manifest = {
        "bundle_version": BUNDLE_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": tool_versions(),
        "input": {"video": video, "sha256": video_sha256},
        "artifacts": {f"{r.step}/{name}": {"url": rel, "sha256": r.sha256[name]}
                      for r in records for name, rel in r.outputs.items()},
        "metrics": {r.step: r.metrics for r in records},
        "timings_s": {r.step: r.seconds for r in records},
        "threads": {r.step: r.threads for r in records},
        "config": config,
    }
    storage.write_json(storage.join(bundle, MANIFEST), manifest)
    return manifest


def read_manifest(bundle: str) -> dict:
    """A complete bundle's `replica.json` (ReplicaError if the bundle is missing or partial)."""
    url = storage.join(bundle, MANIFEST)
    if not storage.exists(url):
        state = bundle_state(bundle)
        raise ReplicaError(bundle, f"not a complete replica ({state['state']}"
                                   + (f", last finished step: {state['last_step']})" if state["last_step"] else ")"))
    manifest = storage.read_json(url)
    if manifest.get("bundle_version") != BUNDLE_VERSION:
        raise ReplicaError(url, f"bundle version {manifest.get('bundle_version')}; this replica reads {BUNDLE_VERSION}")
    return manifest


def verify(bundle: str) -> dict:
    """Re-hash every artifact of a complete bundle. Returns {"ok", "checked", "problems": ["<artifact>: <why>"]}."""
    manifest = read_manifest(bundle)
    problems = []
    for name, entry in manifest["artifacts"].items():
        url = storage.join(bundle, entry["url"])
        if not storage.exists(url):
            problems.append(f"{name}: missing ({entry['url']})")
        elif sha256_of(url) != entry["sha256"]:
            problems.append(f"{name}: sha256 mismatch ({entry['url']} changed since it was written)")
    return {"ok": not problems, "checked": len(manifest["artifacts"]), "problems": problems}


def progress_url(bundle: str, step: str) -> str:
    """Where a running step's latest progress line is (removed when the step finishes)."""
    return storage.join(bundle, "steps", f"{step}.progress")


def bundle_state(bundle: str) -> dict:
    """{"url", "state": complete | partial | empty, "last_step", "progress"} of a bundle folder, from storage alone.

    progress: the latest progress line of the step after the last finished one — running now, or where it
    stopped (storage cannot tell which) — or None."""
    if storage.exists(storage.join(bundle, MANIFEST)):
        return {"url": bundle, "state": "complete", "last_step": STEPS[-1], "progress": None}
    done = [s for s in STEPS if storage.exists(step_url(bundle, s))]
    progress = None
    if len(done) < len(STEPS):
        try:
            progress = storage.read_text(progress_url(bundle, STEPS[len(done)])).strip() or None
        except ReplicaError:  # not started, or finished in between
            pass
    return {"url": bundle, "state": "partial" if done else "empty", "last_step": done[-1] if done else None,
            "progress": progress}


def list_bundles(prefix: str) -> list[dict]:
    """Every bundle folder directly under `prefix` with its state (folders holding no step are left out)."""
    out = []
    for url in storage.list_urls(prefix):
        if storage.exists(storage.join(url, MANIFEST)) or storage.exists(storage.join(url, "steps")):
            out.append(bundle_state(url))
    return out
