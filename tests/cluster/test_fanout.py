"""cluster.fanout: one Ray task per item, results in item order, failures reported per item."""

import math

from cluster.fanout import map_with_progress
from datasets import storage


def test_results_come_back_in_item_order_and_failures_do_not_stop_the_rest(ray_cluster):
    results, failures = map_with_progress(math.sqrt, [16.0, -1.0, 9.0, 4.0], "sqrt", show_progress=False)
    assert results == [4.0, None, 3.0, 2.0]
    assert [(f.index, f.item, f.error) for f in failures] == [(1, -1.0, "ValueError: math domain error")]


def test_replica_errors_keep_their_one_line_message(ray_cluster, tmp_path, s3_root):
    present = tmp_path / "present.bin"
    present.write_bytes(b"12345")
    storage.write_bytes(storage.join(s3_root, "remote.bin"), b"123")  # workers reach the driver's S3 endpoint
    urls = [str(present), str(tmp_path / "missing.bin"), storage.join(s3_root, "remote.bin")]
    results, failures = map_with_progress(storage.size, urls, "size", max_in_flight=1, show_progress=False)
    assert results == [5, None, 3]
    assert [f.error for f in failures] == [f"{tmp_path / 'missing.bin'}: no such object"]
