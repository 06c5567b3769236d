"""Fine-tuning the animator to one person: the time split, a trial that lowers the validation LVE, and the rule
that a search finding nothing better ships the foundation unchanged.

The person is a synthetic one without video (speech and its true parameters stand in for tracked ones); the
foundation is an untrained tiny animator, so any sensible fine-tuning improves on it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from datasets.errors import ReplicaError
from foundation.world import SynthConfig
from foundation.world.world import build_world
from launch.config import load_config
from personalize.finetune import (FinetuneConfig, PersonData, _truth_lve, finetune_animator, scored_from,
                                  train_trial)


TINY = dict(trials=1, steps=[20], report_every=10, window_s=1.0, batch_size=2)


@functools.cache
def person() -> PersonData:
    """About 4 s of a synthetic person's speech and the parameters it drove."""
    cfg = SynthConfig(video=False, size=64, atlas_size=256, voices=["flite:*"], seed=3)
    take = build_world(cfg.model_dump_json()).person(4.0)
    params = {k: take.params[k] for k in ("shape", "expr", "jaw", "neck", "rot", "trans")}
    return PersonData(take.wav, params)


@pytest.fixture(scope="module")
def foundation(tmp_path_factory) -> str:
    from foundation.animation.model import Animator
    from foundation.audio.encoder import AudioEncoder
    from foundation.models import animator_export, save_export

    cfg = load_config("tiny")
    torch.manual_seed(0)
    animator = Animator(cfg.animator)
    animator.init_mean({"expr": torch.full((52,), 0.05),
                        **{k: torch.zeros(3) for k in ("jaw", "neck", "rot", "trans")}})
    url = str(tmp_path_factory.mktemp("foundation") / "animator.pt")
    save_export(animator_export(animator, AudioEncoder(cfg.audio_encoder).eval(), cfg.features, "untrained"), url)
    return url


def test_the_last_frames_are_held_out_and_the_ones_before_them_validate():
    data = person()
    spans = data.spans(FinetuneConfig())
    n = data.n_frames
    assert spans["heldout"] == (n - round(0.15 * n), n)
    assert spans["train"][0] == 0 and spans["train"][1] == spans["validation"][0]
    assert spans["validation"][1] == spans["heldout"][0]
    with pytest.raises(ReplicaError, match="too few to fine-tune"):
        PersonData(data.wav[:3 * 640], {k: v[:3] if v.ndim == 2 else v for k, v in data.params.items()}).spans(
            FinetuneConfig())


def test_against_the_truth_the_tracked_mouth_is_scored_beside_the_animators():
    data = person()
    truth, spans = data.params, data.spans(FinetuneConfig())
    first = scored_from(spans)
    exact = {k: torch.as_tensor(truth[k][first:data.n_frames]) for k in ("expr", "jaw")}  # predicts the truth
    tracked_exactly = _truth_lve(PersonData(data.wav, truth, truth), exact, None, spans)
    assert tracked_exactly == {"heldout_true_lve_mm_before": 0.0, "heldout_true_lve_mm_after": 0.0,
                               "heldout_true_lve_mm_tracked": 0.0}
    agape = {**truth, "jaw": truth["jaw"] + np.array([0.05, 0.0, 0.0], np.float32)}  # tracked 3° too open
    tracked_agape = _truth_lve(PersonData(data.wav, agape, truth), exact, None, spans)
    assert tracked_agape["heldout_true_lve_mm_tracked"] > 1.0 and tracked_agape["heldout_true_lve_mm_before"] == 0.0


def test_a_trial_lowers_the_validation_lip_error(foundation):
    reports = []
    cfg = FinetuneConfig(foundation=foundation, **TINY)
    train_trial({"lr": 3e-3, "steps": 20, "layers": "all"}, person(), foundation, cfg, "cpu",
                lambda metrics, export: reports.append((metrics, export)))
    assert [m["step"] for m, _ in reports] == [10, 20]
    first, last = reports[0][0], reports[-1][0]
    assert last["validation_lve_mm"] < first["validation_lve_mm"] and reports[-1][1]["kind"] == "animator"


def test_a_search_that_finds_nothing_better_ships_the_foundation(ray_cluster, foundation, tmp_path):
    """Two trials, one at a time (`max_concurrent`), both wrecked by a learning rate of 0.5."""
    from foundation.models import load_exported

    cfg = FinetuneConfig(foundation=foundation, lr=(0.5, 0.6), **TINY | {"trials": 2}, max_concurrent=1)
    tables = []
    result = finetune_animator(person(), cfg, str(tmp_path / "search"), on_result=tables.append)
    assert result.metrics["shipped"].startswith("foundation")
    assert result.metrics["heldout_lve_mm_after"] == result.metrics["heldout_lve_mm_before"]
    reference = load_exported(foundation)["state_dict"]
    assert all(torch.equal(result.export["state_dict"][k], v) for k, v in reference.items())
    assert len(result.trials) == 2 and {t["status"] for t in result.trials} == {"done"}
    first = tables[0][0]["trial"]
    last_step = {row["trial"]: row["step"] for row in tables[-1]}
    when_second_starts = {row["trial"]: row["step"] for row in next(t for t in tables if len(t) == 2)}
    assert when_second_starts[first] == last_step[first] == 20  # the first trial had finished: one at a time
    assert not (tmp_path / "search").exists()


def test_fine_tuning_needs_an_animator_export(tmp_path):
    from foundation.audio import AudioEncoder, FeatureConfig
    from foundation.models import audio_export, save_export

    with pytest.raises(ReplicaError, match="nope.pt: "):
        finetune_animator(person(), FinetuneConfig(foundation=str(tmp_path / "nope.pt")), str(tmp_path / "search"))
    audio = str(tmp_path / "audio.pt")
    save_export(audio_export(AudioEncoder().eval(), FeatureConfig(), []), audio)
    with pytest.raises(ReplicaError, match="is not an animator export"):
        finetune_animator(person(), FinetuneConfig(foundation=audio), str(tmp_path / "search"))


def test_tunes_upload_of_a_renamed_temporary_state_file_is_not_reported_but_other_failures_are(caplog):
    """Tune logs this when its background upload of the experiment folder lists a `.<uuid>-tmp-…` state file that
    the next snapshot renames before the copy reaches it (pyarrow's message, as seen in a `replica create`)."""
    import logging

    from personalize.finetune import _VanishedTempFile

    state_log = logging.getLogger("ray.tune.execution.experiment_state")
    race = _VanishedTempFile()
    state_log.addFilter(race)
    vanished = FileNotFoundError("[Errno 2] Failed to open local file '/tmp/ray/session_x/artifacts/search/"
                                 "driver_artifacts/.44356bd3-tmp-basic-variant-state-2026-12-07_17-43-44.json'")
    failures = [vanished, FileNotFoundError("[Errno 2] Failed to open local file '/data/bundle/search'"),
                PermissionError("[Errno 13] Permission denied: 's3://bucket/replicas/ann/finetune/search'")]
    try:
        with caplog.at_level(logging.ERROR, logger="ray.tune.execution.experiment_state"):
            for error in failures:
                try:
                    raise error
                except OSError:
                    state_log.error("Saving experiment state to storage at 's3://b/search' failed with exception: ",
                                    exc_info=True)
    finally:
        state_log.removeFilter(race)
    assert [record.exc_info[1] for record in caplog.records] == failures[1:]
