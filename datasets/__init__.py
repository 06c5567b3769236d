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

from datasets.exports import lazy_getattr

_EXPORTS = {
    "storage": "datasets.storage",
    "ReplicaError": "datasets.errors", "Sample": "datasets.schema", "encode": "datasets.schema",
    "decode": "datasets.schema", "ShardWriter": "datasets.shards", "write_dataset": "datasets.shards",
    "write_manifest": "datasets.shards", "read_manifest": "datasets.shards", "LoaderConfig": "datasets.loader",
    "ShardLoader": "datasets.loader", "iter_samples": "datasets.loader",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("datasets", _EXPORTS)
