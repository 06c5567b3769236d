"""`replica data synth` and `replica data speech-faces`: the synthetic talking-head world rendered into a dataset
on Ray, speaking TTS sentences (`synth_dataset`) or real recordings with phone timings (`speech_faces_dataset`).

The world itself (`foundation.world`) knows nothing of Ray; this driver fans one Ray task out per identity
(its clips share one texture atlas), each writing its own shards under a distinct prefix, and publishes the
manifest last. A re-run with the same config finds the manifest's `inputs` fingerprint unchanged and returns
at once.
"""

from __future__ import annotations

import functools
import hashlib
import time

from rich.console import Console

from cluster.fanout import map_with_progress
from cluster.runtime import RuntimeConfig
from datasets import storage
from datasets.errors import ReplicaError
from datasets.shards import MANIFEST, ShardWriter, read_manifest, write_manifest
from foundation.world import SynthConfig, fingerprint, synth_identity
from foundation.world.world import LICENSE, IdentityResult


def _finished(out: str, inputs: str) -> dict | None:
    """The manifest info of the dataset at `out` marked skipped, when it was written from the same `inputs`."""
    manifest_url = storage.join(out, MANIFEST)
    if storage.exists(manifest_url):
        previous = read_manifest(manifest_url).info
        if previous.get("inputs") == inputs:
            return {**previous, "skipped": True}
    return None


def synth_dataset(cfg: SynthConfig, out: str, runtime: RuntimeConfig | None = None, console: Console | None = None,
                  show_progress: bool = True) -> dict:
    """Generate the synthetic dataset of `cfg` into `out` (one Ray task per identity); return the manifest info."""
    out = storage.absolute(out)  # Ray workers need not share the driver's working directory
    inputs = fingerprint(cfg)
    previous = _finished(out, inputs)
    if previous is not None:
        return previous
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
        "hours": round(sum(r.seconds for r in done) / 3600, 4),
        "seconds_taken": round(time.perf_counter() - started, 1),
    }
    write_manifest(out, [s for r in done for s in r.shards], info=info)
    return info


def _speech_faces_identity(job: tuple[int, list[str]], cfg_json: str, speech_url: str, out: str) -> IdentityResult:
    """Identity `job[0]` of the world speaking the recordings `job[1]` (sample keys) of `speech_url`, as shards
    `<out>/<identity id>-NNNNNN.tar` (one unit of work)."""
    from datasets.loader import iter_samples
    from foundation.world.world import build_world

    index, keys = job
    world = build_world(cfg_json)
    person = world.identity(index)
    wanted, seconds = set(keys), 0.0
    with ShardWriter(out, prefix=person.id, max_count=10_000) as writer:
        for speech in iter_samples(speech_url):
            if speech.key in wanted:
                sample = world.speech_clip(index, speech.key, speech.wav, speech.meta["phones"], speech.meta)
                seconds += sample.duration_s
                writer.write(sample)
    return IdentityResult(person.id, "real", writer.shards, len(keys), seconds)


def speech_faces_dataset(cfg: SynthConfig, speech_url: str, out: str, runtime: RuntimeConfig | None = None,
                         console: Console | None = None, show_progress: bool = True) -> dict:
    """Real speech driving the synthetic world's faces: every recording of the dataset `speech_url` that carries
    phone timings becomes one clip of a made-up face (`SynthWorld.speech_clip`) in `out`, with the true mouth
    motion of its phones. Recordings are dealt to `cfg.identities` faces in key order, one Ray task per face
    (`cfg.video` False is the usual: audio, parameters and landmarks). Returns the manifest info; a re-run on the
    same speech dataset and config returns at once (`skipped`).
    """
    from datasets.loader import iter_samples

    out = storage.absolute(out)
    speech_url = storage.absolute(speech_url)
    speech = read_manifest(speech_url)
    inputs = fingerprint(cfg) + "-" + hashlib.sha256("".join(s.sha256 for s in speech.shards).encode()).hexdigest()[:16]
    previous = _finished(out, inputs)
    if previous is not None:
        return previous
    started = time.perf_counter()
    keys, speakers, sources, licenses, without = [], set(), set(), set(), 0
    for sample in iter_samples(speech_url):
        if sample.meta.get("phones"):
            keys.append(sample.key)
            speakers.add(sample.meta.get("speaker", "unknown"))
            sources.add(sample.meta.get("source", "unknown"))
            licenses.add(sample.meta.get("license", "unknown"))
        else:
            without += 1
    if not keys:
        raise ReplicaError(speech_url, f"none of its {without} recordings has phone timings to drive a face")
    keys.sort()
    jobs = [(i, keys[i::cfg.identities]) for i in range(min(cfg.identities, len(keys)))]
    task = functools.partial(_speech_faces_identity, cfg_json=cfg.model_dump_json(), speech_url=speech_url, out=out)
    results, failures = map_with_progress(task, jobs, "speech-faces", runtime=runtime, console=console,
                                          show_progress=show_progress)
    if failures:
        raise ReplicaError(out, f"{len(failures)} of {len(jobs)} faces failed; first: {failures[0].error}")
    done = [r for r in results if r is not None]
    info = {
        "inputs": inputs, "config": cfg.model_dump(mode="json"), "source": "real speech, synthetic faces",
        "speech": speech_url, "speakers": sorted(speakers), "identities": len(done),
        "sources": sorted(sources), "licenses": sorted(licenses | {LICENSE}),
        "clips": sum(r.clips for r in done), "without_phones": without,
        "hours": round(sum(r.seconds for r in done) / 3600, 4),
        "seconds_taken": round(time.perf_counter() - started, 1),
    }
    write_manifest(out, [s for r in done for s in r.shards], info=info)
    return info
