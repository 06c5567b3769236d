"""`replica data ingest`: raw videos → a sharded dataset, one Ray task per input file.

The per-file work lives in `datasets.ingest.ingest_file`; this driver finds and pairs the inputs,
skips the whole batch when the output's manifest already covers the same inputs and config, fans
the files out with `cluster.fanout.map_with_progress`, and publishes the manifest last with the
batch report as its `info` — so a dataset is visible only once every file has been dealt with,
and a bad file is a line in the report, never the end of the batch.
"""

from __future__ import annotations

import functools
from collections import Counter

from rich.console import Console

from cluster.fanout import map_with_progress
from cluster.runtime import RuntimeConfig
from datasets import storage
from datasets.ingest import IngestConfig, IngestReport, find_sources, ingest_file
from datasets.shards import MANIFEST, read_manifest, write_manifest


def run_ingest(sources: list[str], out: str, cfg: IngestConfig | None = None, speaker: str | None = None,
               license: str = "unknown", runtime: RuntimeConfig | None = None, console: Console | None = None,
               show_progress: bool = True) -> IngestReport:
    """Ingest video files and folders `sources` into the dataset folder `out`; return the report.

    speaker: one speaker id for every file (None: each file's stem). license: recorded per sample.
    A re-run whose inputs (URLs and sizes) and config match the existing manifest does nothing and
    returns the stored report with `skipped=True`.
    """
    cfg = cfg or IngestConfig()
    # Ray workers need not share the driver's working directory: hand them absolute locations.
    out, sources = storage.absolute(out), [storage.absolute(s) for s in sources]
    found, bad, inputs = find_sources(sources)
    report = IngestReport(out=out, inputs=inputs, config={**cfg.model_dump(), "speaker": speaker, "license": license})
    manifest_url = storage.join(out, MANIFEST)
    if storage.exists(manifest_url):
        previous = read_manifest(manifest_url).info
        if previous.get("inputs") == report.inputs and previous.get("config") == report.config:
            return IngestReport(**previous, skipped=True)
    task = functools.partial(ingest_file, out=out, cfg=cfg, speaker=speaker, license=license)
    results, failures = map_with_progress(task, found, "ingest", runtime=runtime, console=console,
                                          show_progress=show_progress)
    done = [r for r in results if r is not None]
    dropped = Counter()
    for result in done:
        dropped.update(result.dropped)
    report.files_in = len(found) + len(bad)
    report.files_ok = len(done)
    report.clips_out = sum(r.clips for r in done)
    report.hours_in = round(sum(r.duration_s for r in done) / 3600, 4)
    report.dropped = dict(sorted(dropped.items()))
    report.bad_files = bad + [{"path": f.item.video, "reason": _reason(f.error, f.item.video)} for f in failures]
    write_manifest(out, [s for r in done for s in r.shards], info=report.info())
    return report


def _reason(error: str, path: str) -> str:
    """The reason part of a failure line (its path is reported beside it)."""
    return error[len(path) + 2:] if error.startswith(f"{path}: ") else error
