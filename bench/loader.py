"""Loader throughput against the raw speed of reading the same shard bytes from the same storage.

For local disk and a loopback S3 server (moto), measures:
- raw: one process streaming every shard's bytes through `datasets.storage` (the limit);
- loader without decode, 1 and 2 DataLoader workers (target: ≥ 80% of raw MB/s);
- the full loader (decode + crop + log-mel features), 1 and 2 workers: samples/s;
- the per-sample decode cost, measured in-process.
Each figure is the median of several passes; all are taken side by side in one run. Loader figures
come twice: over the whole pass (starting the DataLoader worker processes included) and in steady
state (from the first batch on), which is what a long epoch sees.

    .venv/bin/python bench/loader.py [--samples 96] [--repeats 3]

Writes bench/results/loader.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402
from datasets import storage  # noqa: E402
from datasets.loader import LoaderConfig, ShardLoader, iter_tar_samples  # noqa: E402
from datasets.s3server import moto_server, s3_environment  # noqa: E402
from datasets.schema import decode  # noqa: E402
from datasets.shards import read_manifest, write_dataset  # noqa: E402
from datasets.toy import toy_sample  # noqa: E402


def raw_read(url: str) -> tuple[float, int]:
    start, total = time.perf_counter(), 0
    for shard in read_manifest(url).shard_urls():
        with storage.open_read(shard) as f:
            while chunk := f.read(4 * 2**20):
                total += len(chunk)
    return time.perf_counter() - start, total


def loader_pass(url: str, workers: int, decode_samples: bool) -> tuple[float, int, int]:
    transform = None
    if decode_samples:
        from foundation.audio.features import BatchFeatures, FeatureConfig

        transform = BatchFeatures(FeatureConfig())
    cfg = LoaderConfig(batch_size=8, window_s=4.0, num_workers=workers, decode=decode_samples, shuffle_buffer=16)
    start, samples, nbytes, first = time.perf_counter(), 0, 0, None
    for batch in ShardLoader(url, cfg, transform=transform):
        if first is None:  # steady state starts once the workers are up and the first batch is in
            first = (time.perf_counter(), len(batch["keys"]), batch.get("bytes", 0))
        samples += len(batch["keys"])
        nbytes += batch.get("bytes", 0)
    end = time.perf_counter()
    steady_s = max(end - first[0], 1e-9)
    return end - start, samples, nbytes, steady_s, samples - first[1], nbytes - first[2]


def decode_cost_ms(url: str, limit: int = 32) -> float:
    members = []
    for shard in read_manifest(url).shard_urls():
        members += list(iter_tar_samples(shard, {}))
        if len(members) >= limit:
            break
    start = time.perf_counter()
    for m in members[:limit]:
        decode(m)
    return 1000 * (time.perf_counter() - start) / len(members[:limit])


def measure(url: str, repeats: int) -> dict:
    def median(fn):
        runs = [fn() for _ in range(repeats)]
        return [statistics.median(col) for col in zip(*runs)]

    raw_s, raw_bytes = median(lambda: raw_read(url))
    out = {"raw": {"seconds": raw_s, "MB_per_s": raw_bytes / raw_s / 1e6}}
    raw_rate = raw_bytes / raw_s
    for workers in (1, 2):
        t, n, b, ts, ns, bs = median(lambda: loader_pass(url, workers, False))
        out[f"no_decode_{workers}w"] = {
            "seconds": t, "MB_per_s": b / t / 1e6, "samples_per_s": n / t, "fraction_of_raw": (b / t) / raw_rate,
            "steady_MB_per_s": bs / ts / 1e6, "steady_fraction_of_raw": (bs / ts) / raw_rate}
        t, n, _, ts, ns, _ = median(lambda: loader_pass(url, workers, True))
        out[f"full_{workers}w"] = {"seconds": t, "samples_per_s": n / t, "MB_per_s": raw_bytes / t / 1e6,
                                   "steady_samples_per_s": ns / ts}
    out["decode_ms_per_sample"] = decode_cost_ms(url)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    samples = [toy_sample(f"k{i:04d}", 4.0, speaker=f"s{i % 8}", seed=i) for i in range(args.samples)]
    machine = describe_machine(packages=("s3fs", "fsspec", "aiobotocore", "botocore"))  # the S3 figures hang on them
    results = {"machine": machine, "samples": args.samples, "sample_seconds": 4.0, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "ds")
        manifest = write_dataset(local, samples, max_count=16)
        results["dataset_MB"] = manifest.num_bytes / 1e6
        results["local"] = measure(local, args.repeats)
        print("local", json.dumps(results["local"], indent=1))
        with moto_server() as endpoint, s3_environment(endpoint):
            import boto3

            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            write_dataset("s3://bench/ds", samples, max_count=16)
            results["s3_loopback"] = measure("s3://bench/ds", args.repeats)
            print("s3", json.dumps(results["s3_loopback"], indent=1))
    out = ROOT / "bench" / "results" / "loader.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
