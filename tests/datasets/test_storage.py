"""Storage over local disk and a real S3-protocol server."""

import threading

import pytest

from datasets import storage
from datasets.errors import ReplicaError
from datasets.s3server import free_port


def test_round_trip_write_list_read(any_root):
    a, b = storage.join(any_root, "a.bin"), storage.join(any_root, "sub", "b.txt")
    storage.write_bytes(a, b"\x00\x01payload")
    storage.write_text(b, "hello")
    assert storage.read_bytes(a) == b"\x00\x01payload"
    assert storage.read_text(b) == "hello"
    assert storage.exists(a) and storage.size(a) == 9
    assert storage.list_urls(any_root, recursive=True) == [a, b]
    storage.remove(a)
    assert not storage.exists(a)


def test_json_round_trip(any_root):
    url = storage.join(any_root, "manifest.json")
    storage.write_json(url, {"shards": [1, 2], "schema": 1})
    assert storage.read_json(url) == {"shards": [1, 2], "schema": 1}


def test_streaming_read_of_large_object(any_root):
    url = storage.join(any_root, "big.bin")
    payload = bytes(range(256)) * (3 * 4096)
    storage.write_bytes(url, payload)
    with storage.open_read(url) as f:
        chunks = iter(lambda: f.read(100_000), b"")
        assert b"".join(chunks) == payload


def test_overwrite_is_invisible_until_complete(any_root):
    url = storage.join(any_root, "obj.bin")
    old, new = b"old" * 1000, b"new" * 200_000
    storage.write_bytes(url, old)
    with storage.open_write(url) as f:
        f.write(new[:300_000])
        assert storage.read_bytes(url) == old  # half-written data is not visible
        f.write(new[300_000:])
    assert storage.read_bytes(url) == new


def test_failed_write_keeps_old_object_and_leaves_no_litter(any_root):
    url = storage.join(any_root, "obj.bin")
    storage.write_bytes(url, b"precious")
    with pytest.raises(RuntimeError):
        with storage.open_write(url) as f:
            f.write(b"partial")
            raise RuntimeError("writer crashed")
    assert storage.read_bytes(url) == b"precious"
    assert storage.list_urls(any_root) == [url]


def test_concurrent_reader_sees_whole_versions_only(local_root):
    url = storage.join(local_root, "obj.bin")
    versions = [bytes([i]) * 2_000_000 for i in range(6)]
    storage.write_bytes(url, versions[0])
    seen, done = [], threading.Event()

    def writer():
        for version in versions[1:]:
            storage.write_bytes(url, version)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        seen.append(storage.read_bytes(url))
    thread.join()
    assert all(data in versions for data in seen)


def test_missing_object_error_names_url(any_root):
    url = storage.join(any_root, "nope.bin")
    with pytest.raises(ReplicaError, match="nope.bin: no such object"):
        storage.read_bytes(url)
    with pytest.raises(ReplicaError, match="nope.bin"):
        storage.remove(url)


def test_missing_bucket_is_named(s3_server):
    with pytest.raises(ReplicaError, match="no such bucket"):
        storage.check_reachable("s3://bucket-that-does-not-exist/x")


def test_unreachable_endpoint_is_one_clear_line(s3_server):
    dead = f"http://127.0.0.1:{free_port()}"
    previous = storage.s3_options()
    storage.configure(storage.S3Options(endpoint_url=dead, retries=1, connect_timeout_s=1))
    try:
        with pytest.raises(ReplicaError) as info:
            storage.read_bytes("s3://bucket/key.bin")
    finally:
        storage.configure(previous)
    message = str(info.value)
    assert message == f"s3://bucket/key.bin: storage endpoint unreachable ({dead})"
    assert "\n" not in message


def test_check_reachable_leaves_nothing_behind(any_root):
    storage.check_reachable(any_root)
    assert storage.list_urls(any_root) == []


def test_absolute_resolves_local_paths_and_leaves_object_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.absolute("runs/x") == str(tmp_path / "runs" / "x")
    assert storage.absolute("file://runs/x") == str(tmp_path / "runs" / "x")
    assert storage.absolute("s3://bucket/runs/x") == "s3://bucket/runs/x"
