"""Shard writing, manifests and schema validation."""

import hashlib
import json

import numpy as np
import pytest

from datasets import storage
from datasets.errors import ReplicaError
from datasets.schema import decode, encode
from datasets.shards import ShardWriter, read_manifest, write_dataset, write_manifest
from datasets.toy import toy_sample


def test_writer_rolls_shards_by_count_and_manifest_describes_them(any_root):
    manifest = write_dataset(any_root, (toy_sample(f"k{i:03d}", 0.5, seed=i) for i in range(7)), max_count=3)
    assert [s.samples for s in manifest.shards] == [3, 3, 1]
    loaded = read_manifest(any_root)
    assert loaded.num_samples == 7 and loaded.schema == 1 and loaded.tool.startswith("replica")
    for info, url in zip(loaded.shards, loaded.shard_urls()):
        data = storage.read_bytes(url)
        assert len(data) == info.bytes and hashlib.sha256(data).hexdigest() == info.sha256


def test_writer_rolls_shards_by_size(local_root):
    manifest = write_dataset(local_root, (toy_sample(f"k{i}", 1.0) for i in range(4)), max_bytes=100_000)
    assert len(manifest.shards) == 4  # each ~1 s sample (wav + landmarks) exceeds 100 kB


def test_dataset_is_invisible_until_manifest_is_written(local_root):
    writer = ShardWriter(local_root, max_count=2)
    for i in range(3):
        writer.write(toy_sample(f"k{i}", 0.3))
    with pytest.raises(ReplicaError, match="no manifest"):
        read_manifest(local_root)
    write_manifest(local_root, writer.close())
    assert read_manifest(local_root).num_samples == 3


def test_failed_writer_leaves_no_partial_shard(local_root):
    with pytest.raises(RuntimeError):
        with ShardWriter(local_root, max_count=10) as writer:
            writer.write(toy_sample("k0", 0.3))
            raise RuntimeError("crash mid-shard")
    assert storage.list_urls(local_root) == []


def test_same_samples_give_identical_shard_bytes(tmp_path):
    a = write_dataset(str(tmp_path / "a"), [toy_sample("k0", 0.4)])
    b = write_dataset(str(tmp_path / "b"), [toy_sample("k0", 0.4)])
    assert a.shards[0].sha256 == b.shards[0].sha256


def test_encode_decode_round_trip():
    sample = toy_sample("round", 0.6)
    back = decode(encode(sample) | {"__key__": "round"})
    assert np.allclose(back.wav, sample.wav, atol=1 / 32767) and back.meta["speaker"] == "spk0"
    assert np.array_equal(back.lmk, sample.lmk) and np.array_equal(back.mm["expr"], sample.mm["expr"])


@pytest.mark.parametrize("mutate, reason", [
    (lambda s: setattr(s, "key", "has.dot"), "no dots"),
    (lambda s: setattr(s, "key", "k" * 81), "at most 80"),
    (lambda s: s.meta.pop("speaker"), "json lacks speaker"),
    (lambda s: setattr(s, "lmk", s.lmk[:, :10]), "lmk.npy must be"),
    (lambda s: setattr(s, "lmk", s.lmk[:5]), "frames, audio implies"),
    (lambda s: s.mm.pop("jaw"), "mm.npz lacks jaw"),
    (lambda s: setattr(s, "wav", s.wav[:100]), "too short"),
])
def test_schema_rejects_bad_samples_on_write(mutate, reason):
    sample = toy_sample("bad", 0.5)
    mutate(sample)
    with pytest.raises(ReplicaError, match=reason):
        encode(sample)


def test_duplicate_keys_are_rejected(local_root):
    with pytest.raises(ReplicaError, match="duplicate key"):
        write_dataset(local_root, [toy_sample("same", 0.3), toy_sample("same", 0.3)])


def test_unsupported_schema_version_is_named(local_root):
    write_dataset(local_root, [toy_sample("k", 0.3)])
    url = storage.join(local_root, "manifest.json")
    data = json.loads(storage.read_text(url))
    storage.write_json(url, data | {"schema": 99})
    with pytest.raises(ReplicaError, match="schema version 99"):
        read_manifest(local_root)
