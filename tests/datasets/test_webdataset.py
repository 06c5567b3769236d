"""Replica's shards are plain WebDataset: webdataset's own reader gets them back byte for byte."""

import webdataset

from datasets.schema import encode
from datasets.shards import read_manifest, webdataset_urls, write_dataset
from datasets.toy import toy_sample


def members(sample: dict) -> dict:
    """The member bytes of a sample, without webdataset's `__key__`/`__url__`/`__local_path__`."""
    return {k: v for k, v in sample.items() if not k.startswith("__")}


def test_plain_webdataset_reads_replica_shards_sample_for_sample(any_root):
    samples = [toy_sample(f"k{i:02d}", 0.3, speaker=f"s{i % 2}", with_face=i % 3 != 0, seed=i) for i in range(7)]
    write_dataset(any_root, samples, max_count=3)
    manifest = read_manifest(any_root)
    urls = webdataset_urls(manifest)

    read = list(webdataset.WebDataset(urls, shardshuffle=False))

    assert [s["__key__"] for s in read] == [s.key for s in samples]
    assert [s["__url__"] for s in read] == [url for url, info in zip(urls, manifest.shards) for _ in range(info.samples)]
    for got, sample in zip(read, samples):
        assert members(got) == members(encode(sample))
