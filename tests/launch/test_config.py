"""Config presets, dotted overrides and their errors."""

import pytest
import yaml

from datasets.errors import ReplicaError
from launch.config import load_config, save_config, shipped_configs, with_options


def test_shipped_presets_load():
    assert {"tiny", "cluster"} <= set(shipped_configs())
    for name in shipped_configs():
        assert load_config(name).name == name


def test_cluster_preset_targets_gpu_and_s3():
    cfg = load_config("cluster")
    assert cfg.runtime.device == "cuda" and cfg.runtime.precision == "bf16"
    assert cfg.storage.root.startswith("s3://")


def test_dotted_override_sets_typed_value():
    cfg = load_config("tiny", ["storage.root=s3://b/p", "runtime.num_cpus=3", "storage.anon=true"])
    assert cfg.storage.root == "s3://b/p" and cfg.runtime.num_cpus == 3 and cfg.storage.anon is True


def test_unknown_key_is_named():
    with pytest.raises(ReplicaError, match=r"^config key runtime\.gpus: unknown key$"):
        load_config("tiny", ["runtime.gpus=4"])


def test_unknown_section_is_named():
    with pytest.raises(ReplicaError, match=r"config key trainer: unknown key"):
        load_config("tiny", ["trainer.lr=1"])


def test_wrong_type_is_named():
    with pytest.raises(ReplicaError, match=r"config key runtime\.num_cpus: .*integer"):
        load_config("tiny", ["runtime.num_cpus=lots"])


def test_bad_choice_is_named():
    with pytest.raises(ReplicaError, match=r"config key runtime\.device"):
        load_config("tiny", ["runtime.device=tpu"])


def test_override_without_equals_is_rejected():
    with pytest.raises(ReplicaError, match="expected dotted.key=value"):
        load_config("tiny", ["runtime.num_cpus"])


def test_unknown_preset_lists_presets():
    with pytest.raises(ReplicaError, match="presets: .*tiny"):
        load_config("huge")


def test_config_file_from_path_and_bad_yaml(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("runtime:\n  num_cpus: 1\n")
    assert load_config(str(good)).runtime.num_cpus == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime: [unclosed\n")
    with pytest.raises(ReplicaError, match="bad.yaml: not valid YAML"):
        load_config(str(bad))


def test_resolved_config_is_saved_and_reloads(tmp_path):
    cfg = load_config("tiny", ["runtime.num_cpus=1"])
    url = save_config(cfg, str(tmp_path / "run"))
    saved = yaml.safe_load(open(url).read())
    assert saved["runtime"]["num_cpus"] == 1
    assert load_config(url) == cfg


def test_option_out_of_range_is_named_by_its_config_key():
    cfg = load_config("tiny")
    with pytest.raises(ReplicaError, match=r"^config key synth\.identities: .*greater than or equal to 1 \(got -1\)$"):
        with_options(cfg.synth, "synth", identities=-1)


def test_options_not_given_keep_the_config_values():
    cfg = load_config("tiny", ["synth.seed=7"])
    world = with_options(cfg.synth, "synth", identities=2, seed=None)
    assert world.identities == 2 and world.seed == 7
    assert cfg.synth.identities == 4  # the run config itself is unchanged


def test_demo_sizes_are_checked_like_every_key():
    with pytest.raises(ReplicaError, match=r"config key demo\.heldout_identities"):
        load_config("tiny", ["demo.heldout_identities=1"])
