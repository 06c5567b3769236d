"""replica.datasets: storage over any URL, the sample schema, WebDataset shards, ingestion, shipped
corpora and the synthetic talking-head world.

Public API (imported lazily, so `import datasets` stays cheap):

    storage                      read/write/list/remove over paths, file:// and s3:// (atomic writes)
    ReplicaError                 the one user-facing error
    Sample, encode, decode       the sample schema (datasets.schema)
    ShardWriter, write_dataset, write_manifest, read_manifest     shards + manifest (datasets.shards)
    LoaderConfig, ShardLoader, iter_samples                       resumable loader (datasets.loader)

(Shadows Hugging Face's package of the same name; replica does not use that one.)
"""

import importlib

_EXPORTS = {
    "ReplicaError": "datasets.errors", "Sample": "datasets.schema", "encode": "datasets.schema",
    "decode": "datasets.schema", "ShardWriter": "datasets.shards", "write_dataset": "datasets.shards",
    "write_manifest": "datasets.shards", "read_manifest": "datasets.shards", "LoaderConfig": "datasets.loader",
    "ShardLoader": "datasets.loader", "iter_samples": "datasets.loader",
}
__all__ = ["storage", *_EXPORTS]


def __getattr__(name: str):
    if name == "storage":
        return importlib.import_module("datasets.storage")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'datasets' has no attribute {name!r}")
