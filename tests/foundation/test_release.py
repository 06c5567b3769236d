"""The default foundation release: presets that start from others, dataset mixtures, and loading the models that
ship with the package (no argument), checked against their sha256."""

import json
from pathlib import Path

import pytest

from datasets import storage
from datasets.corpora import HELDOUT_SPEAKERS
from datasets.errors import ReplicaError
from datasets.loader import LoaderConfig, ShardLoader, dataset_speakers, iter_samples
from datasets.shards import mix_datasets, parse_mixture_source, read_manifest


def test_default_preset_starts_from_tiny_and_changes_only_what_it_lists(tmp_path):
    from launch.config import load_config

    tiny, default = load_config("tiny"), load_config("default")
    assert default.name == "default"
    assert default.audio_encoder.dim > tiny.audio_encoder.dim  # a bigger model than tiny's …
    assert default.animator.latent_dim == default.audio_encoder.dim
    assert default.avatar == tiny.avatar and default.tracking == tiny.tracking  # … and tiny's everything else
    assert default.loader.num_workers == tiny.loader.num_workers  # nested sections merge key by key
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: default\nname: mine\ntrain:\n  steps: 7\n")
    cfg = load_config(str(mine))
    assert (cfg.train.steps, cfg.train.lr, cfg.audio_encoder.dim) == (7, default.train.lr, default.audio_encoder.dim)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop\n")
    with pytest.raises(ReplicaError, match="names itself"):
        load_config(str(loop))


def test_a_mixture_lists_its_sources_shards_repeated_and_the_loader_reads_them(speech_datasets, tmp_path):
    train, heldout = speech_datasets
    assert parse_mixture_source("s3://b/x*3") == ("s3://b/x", 3)
    for bad in ("x*0", "x*two", "*2"):
        with pytest.raises(ReplicaError, match="expected URL or URL\\*K"):
            parse_mixture_source(bad)
    mix = str(tmp_path / "mix")
    manifest = mix_datasets(mix, [(train, 1), (heldout, 3)])
    sizes = read_manifest(train).num_samples, read_manifest(heldout).num_samples
    assert manifest.num_samples == sizes[0] + 3 * sizes[1]
    assert [p["repeat"] for p in manifest.info["mixture"]] == [1, 3]
    assert set(dataset_speakers(mix)) == set(dataset_speakers(train)) | set(dataset_speakers(heldout))
    loader = ShardLoader(mix, LoaderConfig(batch_size=4, window_s=1.0, num_workers=0))
    keys = [k for batch in loader for k in batch["keys"]]
    assert len(keys) == manifest.num_samples
    held_keys = {s.key for s in iter_samples(heldout)}
    assert sum(k in held_keys for k in keys) == 3 * sizes[1]  # each held-out sample drawn three times an epoch
    with pytest.raises(ReplicaError, match="no manifest"):
        mix_datasets(str(tmp_path / "bad"), [(str(tmp_path / "nothing"), 1)])
    assert not storage.exists(str(tmp_path / "bad" / "manifest.json"))


def test_animator_only_corpora_drive_faces_but_stay_out_of_the_encoders_speech():
    from launch.config import load_config
    from launch.release import mixtures, speech_corpora

    default = load_config("default").release
    assert set(speech_corpora(default)) == {"real_train", "real_heldout"}  # faces speak the encoder's real speech
    rc = load_config("default", ["release.animator_corpora=[fillets, arctic]", "release.animator_tts_repeat=2"]).release
    plan = speech_corpora(rc)
    assert plan["real_train"] == plan["real_heldout"] == default.corpora  # the encoder never hears fillets
    assert plan["faces_speech_train"] == [*default.corpora, "fillets"]  # arctic is there already
    assert "faces_speech_train" not in speech_corpora(rc.model_copy(update={"animator_corpora": ["arctic"]}))
    data = {n: n for n in ("tts_train", "real_train", "faces_train")}
    assert mixtures(rc, data) == {"audio_mix": [("tts_train", 1), ("real_train", rc.real_repeat)],
                                  "animator_mix": [("tts_train", 2), ("faces_train", rc.faces_repeat)]}
    with pytest.raises(ReplicaError, match=r"config key release\.animator_corpora.*unknown corpus fish"):
        load_config("default", ["release.animator_corpora=[fish]"])


def _fake_release(folder, tmp_path):
    """A release folder made the way `launch.release.package` makes one, from two freshly initialised tiny models."""
    from foundation.animation.model import Animator
    from foundation.audio.encoder import AudioEncoder
    from foundation.audio.features import FeatureConfig
    from foundation.models import animator_export, audio_export, save_export
    from launch.release import sha256_file

    encoder = AudioEncoder().eval()
    save_export(audio_export(encoder, FeatureConfig(), ["a", "b"]), str(folder / "audio.pt"))
    save_export(animator_export(Animator().eval(), encoder, FeatureConfig(), "audio.pt"), str(folder / "animator.pt"))
    (folder / "config.yaml").write_text("name: test\n")
    files = {n: {"sha256": sha256_file(str(folder / n)), "bytes": (folder / n).stat().st_size}
             for n in ("audio.pt", "animator.pt")}
    (folder / "release.json").write_text(json.dumps({"version": "test", "recipe": "test", "created": "now",
                                                     "files": files, "eval": {}}))


def test_release_loading_checks_each_file_against_release_json(tmp_path):
    from foundation.models import load_animator, load_audio_encoder, release_info, release_url

    folder = tmp_path / "release"
    folder.mkdir()
    with pytest.raises(ReplicaError, match="is not installed .*replica release build"):
        release_url("audio", str(folder))
    _fake_release(folder, tmp_path)
    assert release_info(str(folder))["version"] == "test"
    assert load_audio_encoder(release_url("audio", str(folder))).speakers == ["a", "b"]
    assert load_animator(release_url("animator", str(folder))).animator is not None
    with pytest.raises(ReplicaError, match="expected one of"):
        release_url("vocoder", str(folder))
    data = bytearray((folder / "animator.pt").read_bytes())
    data[-1] ^= 0xFF
    (folder / "animator.pt").write_bytes(bytes(data))
    with pytest.raises(ReplicaError, match="does not match release.json"):
        release_url("animator", str(folder))


def test_install_refuses_a_tampered_release_and_keeps_the_installed_one(tmp_path, monkeypatch):
    import foundation.models as models
    from launch.release import install

    built, installed = tmp_path / "built", tmp_path / "installed"
    built.mkdir()
    installed.mkdir()
    _fake_release(built, tmp_path)
    monkeypatch.setattr(models, "RELEASE_DIR", str(installed))
    assert install(str(built)) == str(installed)
    assert (installed / "audio.pt").read_bytes() == (built / "audio.pt").read_bytes()
    before = (installed / "audio.pt").read_bytes()
    (built / "audio.pt").write_bytes(b"not a model")
    with pytest.raises(ReplicaError, match="does not match"):
        install(str(built))
    assert (installed / "audio.pt").read_bytes() == before


def test_release_show_names_the_version_files_and_the_real_speech_behind_it(tmp_path):
    from foundation.models import release_info
    from tests.replica_cli import run_replica

    info = release_info()
    result = run_replica("release", "show", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"release {info['version']} (recipe default")
    for name, meta in info["files"].items():
        assert any(line.strip().startswith(f"{name}:") and meta["sha256"][:16] in line for line in lines)
    heldout = next(line for line in lines if line.strip().startswith("real_heldout:"))
    assert heldout.split(":", 1)[1].startswith(f" {len(HELDOUT_SPEAKERS)} speakers")


@pytest.fixture(scope="module")
def real_heldout(tmp_path_factory):
    """The project's held-out real speakers (never in the release's training data) as a dataset, with phones."""
    from datasets.corpora import CorporaConfig, build_corpora
    from launch.release import ReleaseConfig
    from tests.conftest import TEST_CACHE

    url = str(tmp_path_factory.mktemp("real") / "heldout")
    cfg = CorporaConfig(cache_dir=str(TEST_CACHE / "corpora"), recognize_phones=True, asterisk_seconds=8.0)
    build_corpora(ReleaseConfig().corpora, url, cfg, split="heldout")
    return url


def test_the_shipped_release_is_what_the_default_recipe_trains():
    from foundation.models import RELEASE_DIR, release_info
    from launch.config import ReplicaConfig, load_config
    from launch.release import RECIPE_SECTIONS, sha256_file

    info = release_info()
    assert info["recipe"] == "default"
    # A section or setting added after the release was built had no value then: it trained at its default (a new
    # setting's default is what the code did before it existed, e.g. release.corpora without `fillets`).
    recorded = ReplicaConfig.model_validate({**ReplicaConfig().model_dump(mode="json"), **info["config"]})
    recorded = recorded.model_dump(mode="json")
    recipe = load_config("default").model_dump(mode="json")
    differing = sorted(k for k in RECIPE_SECTIONS if recipe[k] != recorded[k])
    assert differing == [], f"launch/configs/default.yaml changed since the release was trained: {differing}"
    for name, meta in info["files"].items():
        assert sha256_file(f"{RELEASE_DIR}/{name}") == meta["sha256"]
        assert meta["bytes"] < 20 * 2**20  # a few MB each
    assert set(info["eval"]["audio"]["real_heldout"]["speaker_names"]) == set(HELDOUT_SPEAKERS)


def test_the_shipped_release_loads_without_arguments_and_beats_the_baselines_on_held_out_real_speech(
        real_heldout, speech_datasets):
    from foundation.evaluation import evaluate_animator, evaluate_audio
    from foundation.evaluation.runner import RELEASE_WINDOW_S
    from foundation.models import load_animator, load_audio_encoder
    from foundation.world import SynthConfig, build_world
    from datasets.shards import write_dataset

    audio, animator = load_audio_encoder(), load_animator()  # no argument: the release inside the package
    assert audio.encoder.cfg.dim == animator.encoder.cfg.dim
    assert not set(audio.speakers) & set(dataset_speakers(real_heldout))  # held out means never trained on
    report = evaluate_audio(None, real_heldout, window_s=RELEASE_WINDOW_S)
    assert report["speakers"] == len(HELDOUT_SPEAKERS) and report["utterances"] >= 30
    assert report["eer"] < 0.35  # far from chance (0.5) on real voices it never heard
    # real voices driving made-up faces through their recognised phones: true mouth motion for real speech
    world = build_world(SynthConfig(video=False, size=64, atlas_size=256, identities=2, seed=21).model_dump_json())
    faces = [world.speech_clip(i % 2, s.key, s.wav, s.meta["phones"], s.meta)
             for i, s in enumerate(iter_samples(real_heldout)) if s.meta.get("phones")]
    assert len(faces) >= 10
    url = str(Path(real_heldout).parent / "faces")
    write_dataset(url, faces)
    lve = evaluate_animator(None, url, speech_datasets[0])  # baselines fitted on TTS training clips
    assert lve["lve_mm/animator"] < lve["lve_mm/energy_jaw"] and lve["lve_mm/animator"] < lve["lve_mm/mean_face"]
    by_speaker = lve["by_speaker"]  # the same clips, per held-out speaker: their clip-weighted mean is the total
    assert set(by_speaker) == {s.meta["speaker"] for s in iter_samples(url)}
    assert sum(row["clips"] for row in by_speaker.values()) == lve["clips"]
    assert sum(row["clips"] * row["lve_mm/animator"] for row in by_speaker.values()) / lve["clips"] == \
        pytest.approx(lve["lve_mm/animator"], abs=0.01)
