"""`replica avatar train` / `replica avatar render` as a user runs them (in-process, through `launch.cli.main`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasets.media import probe, read_audio
from launch.cli import main
from tests.render.person import make_person, write_person

QUICK = ["--set", "avatar.iterations=20", "--set", "avatar.densify_from=10", "--set", "avatar.densify_every=5",
         "--set", "avatar.densify_until=15", "--set", "refine.iterations=5"]


@pytest.fixture(scope="module")
def person_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("person")
    return write_person(folder, make_person(40, 64))


def run(argv, capsys) -> tuple[int, str]:
    """Exit status and the captured output (stdout + stderr) of one `replica …` command."""
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_train_writes_the_avatar_and_its_quality_and_render_writes_an_mp4_with_the_audio(person_files, tmp_path,
                                                                                         capsys):
    video, params = person_files
    avatar, sheet, out = tmp_path / "avatar.pt", tmp_path / "sheet.png", tmp_path / "out.mp4"
    code, text = run(["avatar", "train", "--video", str(video), "--params", str(params), "--out", str(avatar),
                      "--sheet", str(sheet), *QUICK], capsys)
    assert code == 0, text
    quality = json.loads((tmp_path / "avatar.quality.json").read_text())
    assert quality["frames"] == {"train": 32, "heldout": 8}
    assert set(quality["heldout"]) == {"splat", "refined"} and quality["heldout"]["splat"]["psnr_db"] > 15
    assert sheet.read_bytes()[:4] == b"\x89PNG"

    code, text = run(["avatar", "render", "--avatar", str(avatar), "--params", str(params), "--out", str(out),
                      "--audio", str(video)], capsys)
    assert code == 0, text
    info = probe(str(out))
    assert info.has_video and info.has_audio and info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.fps == pytest.approx(25.0)
    audio = read_audio(str(out))
    assert len(audio) / 16_000 == pytest.approx(40 / 25.0, abs=0.05)  # the audio lasts as long as the 40 frames
    assert np.abs(audio).max() > 0.1  # and it decodes to the original speech, not silence


def test_train_names_params_of_the_wrong_length(person_files, tmp_path, capsys):
    video, params = person_files
    arrays = dict(np.load(params))
    for key in ("expr", "jaw", "neck", "rot", "trans", "lmk"):
        arrays[key] = arrays[key][:30]
    short = tmp_path / "short.params.npz"
    np.savez(short, **arrays)
    code, text = run(["avatar", "train", "--video", str(video), "--params", str(short), "--out",
                      str(tmp_path / "a.pt"), *QUICK], capsys)
    assert code == 1
    assert text.strip().splitlines() == [f"error: {short}: 30 frames of parameters for 40 video frames in {video} "
                                         "at 25 fps"]


def test_train_names_a_missing_video(person_files, tmp_path, capsys):
    _, params = person_files
    missing = tmp_path / "nobody.mp4"
    code, text = run(["avatar", "train", "--video", str(missing), "--params", str(params), "--out",
                      str(tmp_path / "a.pt")], capsys)
    assert code == 1
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {missing}")


def test_render_names_params_of_the_wrong_shape(person_files, tmp_path, capsys):
    _, params = person_files
    arrays = dict(np.load(params))
    arrays["expr"] = arrays["expr"][:, :10]
    bad = tmp_path / "bad.params.npz"
    np.savez(bad, **arrays)
    avatar = tmp_path / "avatar.pt"
    avatar.write_bytes(b"the parameters are read and checked before the avatar is")
    code, text = run(["avatar", "render", "--avatar", str(avatar), "--params", str(bad), "--out",
                      str(tmp_path / "o.mp4")], capsys)
    assert code == 1
    assert text.strip().splitlines() == [f"error: {bad}: expr has shape [40, 10], expected [40, 52] (one row per frame)"]
