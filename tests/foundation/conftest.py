"""Datasets from the synthetic world for the pre-training tests: speech + the head motion it drove.

Audio and parameters only (no video), built once per session through the real Ray fan-out. The
held-out identities speak voices no training identity uses (`HELDOUT_VOICES`).
"""

import pytest

from foundation.world import HELDOUT_VOICES, TRAIN_VOICES, SynthConfig

TINY_WORLD = {"video": False, "size": 64, "atlas_size": 256, "clip_seconds": (2.0, 4.0)}


@pytest.fixture(scope="session")
def speech_datasets(ray_cluster, tmp_path_factory):
    """(train URL, held-out URL): 6 identities × 4 clips, and 3 unseen identities × 3 clips."""
    from cluster.synth import synth_dataset

    root = tmp_path_factory.mktemp("speech")
    train = SynthConfig(identities=6, clips_per_identity=4, seed=1, voices=TRAIN_VOICES, **TINY_WORLD)
    heldout = SynthConfig(identities=3, clips_per_identity=3, seed=2, voices=HELDOUT_VOICES, **TINY_WORLD)
    urls = str(root / "train"), str(root / "heldout")
    for cfg, url in zip((train, heldout), urls):
        synth_dataset(cfg, url, show_progress=False)
    return urls
