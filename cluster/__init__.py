"""replica.cluster: the Ray runtime and the fan-out of batch work over a cluster.

Public API (imported lazily; Ray itself is imported only when work is submitted):

    RuntimeConfig, resolve, init_ray, setup_logging     cluster.runtime (and training_worker_env, wandb_mode:
                                                        what training workers run with)
    map_with_progress, fan_out                          cluster.fanout: Ray tasks per item (chains of calls with
                                                        their own resources), in-flight cap, retries, progress
    run_ingest                                          cluster.ingest: raw videos → a dataset
    synth_dataset                                       cluster.synth: the synthetic world → a dataset
    pretrain                                            the cluster.pretrain module: `pretrain.pretrain(kind, cfg, …)`
                                                        runs Ray Train + DeepSpeed pre-training
    CreateSettings, create_replica                      cluster.create: a person's video → a replica bundle
    jobs_client, submit_job, follow_job, stop_job       cluster.jobs: Ray Jobs submission of replica commands
    FleetConfig, run_fleet, fleet_status                cluster.fleet: many replicas at once, resumable, reported
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "RuntimeConfig": "cluster.runtime", "resolve": "cluster.runtime", "init_ray": "cluster.runtime",
    "setup_logging": "cluster.runtime", "training_worker_env": "cluster.runtime", "wandb_mode": "cluster.runtime",
    "map_with_progress": "cluster.fanout", "fan_out": "cluster.fanout", "run_ingest": "cluster.ingest",
    "synth_dataset": "cluster.synth",
    "pretrain": "cluster.pretrain", "CreateSettings": "cluster.create", "create_replica": "cluster.create",
    **dict.fromkeys(["jobs_client", "submit_job", "follow_job", "stop_job"], "cluster.jobs"),
    **dict.fromkeys(["FleetConfig", "run_fleet", "fleet_status"], "cluster.fleet"),
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("cluster", _EXPORTS)
