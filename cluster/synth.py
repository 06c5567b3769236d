"""`replica data synth`: the synthetic talking-head world rendered into a dataset on Ray.

The world itself (`foundation.world`) knows nothing of Ray; this driver fans one Ray task out per identity
(its clips share one texture atlas), each writing its own shards under a distinct prefix, and publishes the
manifest last. A re-run with the same config finds the manifest's `inputs` fingerprint unchanged and returns
at once.
"""

from __future__ import annotations

import functools
import time

from rich.console import Console

from cluster.fanout import map_with_progress
from cluster.runtime import RuntimeConfig
from datasets import storage
from datasets.errors import ReplicaError
from datasets.shards import MANIFEST, read_manifest, write_manifest
from foundation.world import SynthConfig, fingerprint, synth_identity


def synth_dataset(cfg: SynthConfig, out: str, runtime: RuntimeConfig | None = None, console: Console | None = None,
                  show_progress: bool = True) -> dict:
    """Generate the synthetic dataset of `cfg` into `out` (one Ray task per identity); return the manifest info."""
    out = storage.absolute(out)  # Ray workers need not share the driver's working directory
    inputs = fingerprint(cfg)
    manifest_url = storage.join(out, MANIFEST)
    if storage.exists(manifest_url):
        previous = read_manifest(manifest_url).info
        if previous.get("inputs") == inputs:
            return {**previous, "skipped": True}
    started = time.perf_counter()
    task = functools.partial(synth_identity, cfg_json=cfg.model_dump_json(), out=out)
    results, failures = map_with_progress(task, list(range(cfg.identities)), "synth", runtime=runtime,
                                          console=console, show_progress=show_progress)
    if failures:
        raise ReplicaError(out, f"{len(failures)} of {cfg.identities} identities failed; first: {failures[0].error}")
    done = [r for r in results if r is not None]
    info = {
        "inputs": inputs, "config": cfg.model_dump(mode="json"), "source": "synthetic",
        "speakers": [f"synth-{r.identity}" for r in done], "identities": len(done),
        "voices": sorted({r.voice for r in done}), "clips": sum(r.clips for r in done),
        "hours": round(sum(r.seconds for r in done) / 3600, 4), "seconds_taken": round(time.perf_counter() - started, 1),
    }
    write_manifest(out, [s for r in done for s in r.shards], info=info)
    return info
