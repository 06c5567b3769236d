"""`replica data …` run as a user runs it: bad inputs stop it before any work, outputs default under storage.root."""

from tests.replica_cli import run_replica


def test_synth_with_negative_identities_fails_in_one_line_and_writes_nothing(tmp_path):
    result = run_replica("data", "synth", "--identities", "-1", "--set", f"storage.root={tmp_path / 'runs'}",
                         cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: config key synth.identities: Input should be greater than or equal "
                                     "to 1 (got -1)")
    assert list(tmp_path.iterdir()) == []


def test_ingest_of_a_missing_file_fails_naming_it(tmp_path):
    result = run_replica("data", "ingest", "talk.mp4", "--set", f"storage.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: talk.mp4: no such file or folder"
    assert list(tmp_path.iterdir()) == []


def test_synth_person_writes_under_storage_root_by_default(tmp_path):
    root = tmp_path / "elsewhere"
    result = run_replica("data", "synth-person", "--seconds", "1", "--set", f"storage.root={root}",
                         "--set", "synth.size=64", "--set", "synth.supersample=1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (root / "person").iterdir()) == ["person.mp4", "person.params.npz"]
    assert [p.name for p in tmp_path.iterdir()] == ["elsewhere"]
