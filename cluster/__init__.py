"""replica.cluster: the Ray runtime and the fan-out of batch work over a cluster.

Public API (imported lazily; Ray itself is imported only when work is submitted):

    RuntimeConfig, resolve, init_ray, setup_logging     cluster.runtime
    map_with_progress                                   cluster.fanout: one Ray task per item, progress, failures
    run_ingest                                          cluster.ingest: raw videos → a dataset
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "RuntimeConfig": "cluster.runtime", "resolve": "cluster.runtime", "init_ray": "cluster.runtime",
    "setup_logging": "cluster.runtime", "map_with_progress": "cluster.fanout", "run_ingest": "cluster.ingest",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("cluster", _EXPORTS)
