"""`replica avatar …` run as a user runs it: missing inputs are named before any work starts."""

from tests.replica_cli import run_replica


def test_train_on_a_missing_video_fails_naming_it(tmp_path):
    (tmp_path / "person.params.npz").write_bytes(b"")
    result = run_replica("avatar", "train", "--video", "missing.mp4", "--params", "person.params.npz",
                         "--set", f"storage.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: missing.mp4: no such file or folder"
    assert not (tmp_path / "runs").exists()


def test_render_of_a_missing_avatar_fails_naming_it(tmp_path):
    result = run_replica("avatar", "render", "--avatar", "avatar.pt", "--params", "person.params.npz",
                         "--set", f"storage.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: avatar.pt: no such file or folder"
