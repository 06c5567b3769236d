"""The loader: rank/worker split, resume, corrupt input, S3."""

import collections
import io
import tarfile

import pytest
import torch

from datasets import storage
from datasets.errors import ReplicaError
from datasets.loader import LoaderConfig, ShardLoader, iter_tar_samples
from datasets.schema import wav_bytes
from datasets.shards import ShardInfo, write_dataset, write_manifest
from datasets.toy import toy_sample
from foundation.audio.augment import AugmentConfig
from foundation.audio.features import BatchFeatures, FeatureConfig

N = 24


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ds"))
    write_dataset(root, (toy_sample(f"k{i:03d}", 0.4 + 0.05 * (i % 5), speaker=f"s{i % 3}", seed=i)
                         for i in range(N)), max_count=3)
    return root


def keys_of(loader):
    return [k for batch in loader for k in batch["keys"]]


def test_batches_have_fixed_window_shapes(dataset):
    batch = next(iter(ShardLoader(dataset, LoaderConfig(batch_size=4, window_s=0.5, num_workers=0))))
    assert batch["wav"].shape == (4, 8000) and batch["lmk"].shape == (4, 12, 478, 3)
    assert batch["mm"]["expr"].shape == (4, 12, 52) and batch["mm"]["shape"].shape == (4, 50)
    assert (batch["wav_len"] <= 8000).all() and len(batch["speaker"]) == 4


def test_every_sample_seen_exactly_once_across_2_ranks_x_2_workers(dataset):
    cfg = LoaderConfig(batch_size=2, window_s=0.3, num_workers=2, shuffle_buffer=4)
    seen = keys_of(ShardLoader(dataset, cfg, rank=0, world_size=2)) + keys_of(ShardLoader(dataset, cfg, rank=1, world_size=2))
    assert sorted(seen) == [f"k{i:03d}" for i in range(N)]


def test_epochs_reshuffle_but_keep_the_set(dataset):
    loader = ShardLoader(dataset, LoaderConfig(batch_size=4, window_s=0.3, num_workers=0, shuffle_buffer=8))
    first, second = keys_of(loader), keys_of(loader)
    assert sorted(first) == sorted(second) and first != second and loader.epoch == 2


def test_interrupted_and_resumed_epoch_yields_same_multiset(dataset):
    cfg = LoaderConfig(batch_size=2, window_s=0.3, num_workers=2, shuffle_buffer=5, seed=7)
    full = keys_of(ShardLoader(dataset, cfg))
    interrupted = ShardLoader(dataset, cfg)
    before = []
    for i, batch in enumerate(interrupted):
        before += batch["keys"]
        if i == 4:
            state = interrupted.state_dict()
            break
    resumed = ShardLoader(dataset, cfg)
    resumed.load_state_dict(state)
    after = keys_of(resumed)
    assert collections.Counter(before + after) == collections.Counter(full)
    assert len(before) == 10


def test_resume_with_different_worker_count_is_refused(dataset):
    state = ShardLoader(dataset, LoaderConfig(num_workers=2)).state_dict()
    with pytest.raises(ReplicaError, match="num_workers"):
        ShardLoader(dataset, LoaderConfig(num_workers=1)).load_state_dict(state)


def test_resampled_mode_is_infinite(dataset):
    loader = ShardLoader(dataset, LoaderConfig(batch_size=4, window_s=0.3, num_workers=0, resampled=True))
    batches = [b for _, b in zip(range(3 * N // 4), loader)]
    assert len(batches) == 3 * N // 4


def _write_tar(url, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    storage.write_bytes(url, buf.getvalue())
    return buf.getvalue()


def test_undecodable_and_corrupt_members_are_skipped_and_counted(tmp_path, caplog):
    root = str(tmp_path / "ds")
    manifest = write_dataset(root, [toy_sample(f"good{i}", 0.3, with_face=False) for i in range(3)])
    good = toy_sample("x", 0.3, with_face=False)
    bad_shard = _write_tar(storage.join(root, "bad-000000.tar"), [
        ("badwav.wav", b"not a wav"), ("badwav.json", b'{"speaker":"a","source":"t","license":"x"}'),
        ("badjson.wav", wav_bytes(good.wav)), ("badjson.json", b"{nope"),
        ("nowav.json", b'{"speaker":"a","source":"t","license":"x"}'),
    ])
    truncated = storage.join(root, "trunc-000000.tar")
    full = _write_tar(truncated, [("t1.wav", wav_bytes(good.wav)), ("t1.json", b'{"speaker":"a","source":"t","license":"x"}'),
                                  ("t2.wav", wav_bytes(good.wav) * 3)])
    storage.write_bytes(truncated, full[:len(full) // 2 + 100])
    shards = manifest.shards + [ShardInfo("bad-000000.tar", 3, len(bad_shard), ""),
                                ShardInfo("trunc-000000.tar", 2, 0, "")]
    write_manifest(root, shards)
    loader = ShardLoader(root, LoaderConfig(batch_size=2, window_s=0.3, num_workers=0))
    with caplog.at_level("WARNING", logger="replica.loader"):
        keys = keys_of(loader)
    assert {"good0", "good1", "good2", "t1"} <= set(keys) and not {"badwav", "badjson", "nowav"} & set(keys)
    assert loader.skipped == 4  # three bad samples + one corrupt shard tail
    assert "bad-000000.tar: skipping sample badwav" in caplog.text
    assert "trunc-000000.tar: corrupt tar" in caplog.text


def test_missing_shard_fails_fast_with_its_url(tmp_path):
    root = str(tmp_path / "ds")
    write_dataset(root, [toy_sample(f"k{i}", 0.3) for i in range(4)], max_count=2)
    storage.remove(storage.join(root, "shard-000001.tar"))
    with pytest.raises(ReplicaError, match=r"shard-000001.tar: shard listed in the manifest is missing"):
        ShardLoader(root)


def test_round_trip_through_s3(s3_root):
    write_dataset(s3_root, (toy_sample(f"k{i}", 0.3, seed=i) for i in range(6)), max_count=2)
    cfg = LoaderConfig(batch_size=2, window_s=0.3, num_workers=2)
    assert sorted(keys_of(ShardLoader(s3_root, cfg))) == [f"k{i}" for i in range(6)]


def test_raw_mode_reads_every_sample_without_decoding(dataset):
    loader = ShardLoader(dataset, LoaderConfig(batch_size=5, num_workers=2, decode=False))
    batches = list(loader)
    assert sorted(k for b in batches for k in b["keys"]) == [f"k{i:03d}" for i in range(N)]
    assert all("wav" not in b for b in batches) and sum(b["bytes"] for b in batches) > N * 10_000


def test_shard_cut_inside_a_sample_drops_that_sample_and_names_the_shard(tmp_path, caplog):
    url = str(tmp_path / "cut-000000.tar")
    meta = b'{"speaker":"a","source":"t","license":"x"}'
    full = _write_tar(url, [("a.json", meta), ("a.wav", b"w" * 600), ("b.json", meta), ("b.wav", b"w" * 5000)])
    storage.write_bytes(url, full[:full.index(b"w" * 5000) + 1000])  # inside b.wav, after b.json
    counters = {}
    with caplog.at_level("WARNING", logger="replica.loader"):
        keys = [m["__key__"] for m in iter_tar_samples(url, counters)]
    assert keys == ["a"] and counters["bad_shards"] == 1
    assert "cut-000000.tar: corrupt tar at b.wav" in caplog.text


def wav_by_key(batches) -> dict:
    return {key: (wav, int(n)) for batch in batches for key, wav, n in zip(batch["keys"], batch["wav"], batch["wav_len"])}


def test_every_item_gets_a_seed_fixed_by_where_it_is_read(dataset):
    cfg = LoaderConfig(batch_size=4, window_s=0.3, num_workers=0, shuffle_buffer=8, seed=3)
    first, again = list(ShardLoader(dataset, cfg)), list(ShardLoader(dataset, cfg))
    seeds = [s for b in first for s in b["item_seed"].tolist()]
    assert first[0]["item_seed"].dtype == torch.int64 and len(set(seeds)) == N and min(seeds) >= 0
    assert seeds == [s for b in again for s in b["item_seed"].tolist()]
    loader = ShardLoader(dataset, cfg)
    list(loader)
    epoch1 = list(loader)
    assert not set(seeds) & {s for b in epoch1 for s in b["item_seed"].tolist()}  # a new round, new seeds


def test_augmented_batches_resume_exactly_mid_epoch(dataset):
    augment = AugmentConfig(enabled=True, speed_p=0.5, formant_p=0.5, reverb_p=0.5, noise_p=0.8, babble_p=0.5,
                            telephone_p=0.3, codec_p=0.0, gain_p=0.5)
    cfg = LoaderConfig(batch_size=3, window_s=0.4, num_workers=2, shuffle_buffer=5, seed=5)
    transform = BatchFeatures(FeatureConfig(), augment)
    full = wav_by_key(ShardLoader(dataset, cfg, transform=transform))
    interrupted, before = ShardLoader(dataset, cfg, transform=transform), []
    for i, batch in enumerate(interrupted):
        before.append(batch)
        if i == 2:
            state = interrupted.state_dict()
            break
    resumed = ShardLoader(dataset, cfg, transform=transform)
    resumed.load_state_dict(state)
    after = wav_by_key(resumed)
    assert len(after) == N - 9 and not set(after) & set(wav_by_key(before))
    for key, (wav, n) in {**wav_by_key(before), **after}.items():
        assert n == full[key][1] and torch.equal(wav, full[key][0])
    plain = wav_by_key(ShardLoader(dataset, cfg))
    assert sum(not torch.equal(full[k][0], plain[k][0]) for k in plain) >= N // 2  # it did augment
