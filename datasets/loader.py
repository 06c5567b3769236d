"""Read a dataset at full speed on every rank: sharded, shuffled, batched, resumable.

    loader = ShardLoader("s3://bucket/ds", LoaderConfig(batch_size=16), rank=r, world_size=w)
    for batch in loader:          # one epoch (or forever with resampled=True)
        ...                       # batch["wav"] [B, T], batch["mm"]["expr"] [B, F, 52], ...
        checkpoint["loader"] = loader.state_dict()

How samples are split: the manifest's shards are shuffled per epoch with a seeded generator and
dealt round-robin to the `world_size × num_workers` streams (one stream = one DataLoader worker
on one rank), so every sample is read by exactly one stream per epoch. Each stream shuffles its
samples through a seeded buffer, so its order is a pure function of (seed, epoch, stream). That
makes resumption exact: the state records, per stream, how many samples have been handed to the
training loop; a resumed loader replays each stream's order and skips those samples without
decoding them.

Why this split and not `webdataset.WebDataset`'s: its `split_by_node`/`split_by_worker` deal
shards to ranks and workers but keep no position, so a run stopped mid-epoch cannot resume without
reading some samples twice or never. The shards themselves are plain WebDataset (see
`datasets.shards`): each is opened through `datasets.storage` (so `s3://` works with the configured
endpoint) and its members are grouped into samples by webdataset's own tar iterators. A corrupt or
truncated tar ends its shard early and an undecodable sample is skipped; both are counted and
logged with the shard URL; a missing shard fails fast with its URL.
Audio features are computed by `transform` (e.g. `foundation.audio.features`) on each batch. Every
sample carries `item_seed`, a pure function of (seed, round, stream, position): a transform that draws
random numbers (augmentation) seeds them from it, so resumed batches are transformed identically.
"""

from __future__ import annotations

import json
import logging
import tarfile
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from datasets import storage
from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.schema import FPS, MM_FRAME_KEYS, SAMPLE_RATE, Sample, decode
from datasets.shards import Manifest, read_manifest

log = logging.getLogger("replica.loader")


class LoaderConfig(Section):
    """How training reads a dataset."""

    batch_size: int = Field(8, ge=1)
    """Samples per batch (per rank)."""
    window_s: float = Field(4.0, gt=0)
    """Every sample is cropped or zero-padded to this many seconds."""
    num_workers: int = Field(2, ge=0)
    """DataLoader worker processes per rank (0: read in the training process)."""
    shuffle_buffer: int = Field(64, ge=1)
    """Samples held per stream for shuffling (1: no sample-level shuffle)."""
    seed: int = 0
    """Seed for shard order, sample shuffle and crop offsets."""
    resampled: bool = False
    """Infinite mode for step-based training: each stream draws shards with replacement forever."""
    random_crop: bool = True
    """Crop windows at a seeded random offset (False: from the start)."""
    decode: bool = True
    """Decode samples; False reads them and yields only keys and byte counts (measures the read path)."""


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def iter_tar_samples(url: str, counters: dict) -> Iterator[dict]:
    """Group a tar shard's members into WebDataset samples: {"__key__", "__url__", ext: bytes}.

    A truncated or corrupt tar ends the shard early (counted in counters["bad_shards"]); the
    sample it broke inside is dropped, since its members may be incomplete.
    """
    errors: list[Exception] = []
    reading = [""]  # the member whose bytes are being read: its sample is the one a break cuts

    def stop(err: Exception) -> bool:  # webdataset's handler protocol: False ends the shard here
        if not isinstance(err, (tarfile.TarError, EOFError, OSError, ValueError)):
            raise err
        errors.append(err)
        return False

    def note(name: str) -> bool:  # webdataset calls this with each member's name before reading it
        reading[0] = name
        return True

    with storage.open_read(url) as f:
        files = tar_file_expander([{"url": url, "stream": f}], handler=stop, select_files=note)
        for sample in group_by_keys(files, handler=stop):
            if errors and sample["__key__"] == base_plus_ext(reading[0])[0]:
                break  # after a break webdataset still hands over the sample it held: drop it if cut
            yield sample
    if errors:
        counters["bad_shards"] = counters.get("bad_shards", 0) + 1
        # webdataset appends " @ <stream>" to the message; the URL already names the shard
        reason = str(errors[0].args[0]).split(" @ ")[0] if errors[0].args else type(errors[0]).__name__
        log.warning("%s: corrupt tar at %s (%s); skipping the rest of this shard", url, reading[0] or "-", reason)


def crop_sample(sample: Sample, window_s: float, offset_s: float) -> dict:
    """Cut a fixed window from a sample, zero-padding past its end.

    Returns wav [T] (T = window_s·16 kHz), wav_len (valid samples), frames_len (valid frames), start_frame
    (the window's first frame in the sample) and, when present, lmk [F, 478, 3] and mm arrays [F, D]
    (F = window_s·25), edge-padded.
    """
    n_wav, n_frames = int(round(window_s * SAMPLE_RATE)), int(round(window_s * FPS))
    start_frame = int(round(offset_s * FPS))
    start = start_frame * SAMPLE_RATE // FPS  # keep audio and frames aligned on frame boundaries
    wav = sample.wav[start:start + n_wav]
    out = {"wav": np.pad(wav, (0, n_wav - len(wav))), "wav_len": len(wav)}
    frames_len = min(n_frames, max(sample.num_frames - start_frame, 0))
    out["frames_len"], out["start_frame"] = frames_len, start_frame

    def frames(arr: np.ndarray) -> np.ndarray:
        cut = arr[start_frame:start_frame + n_frames]
        if len(cut) == 0:
            cut = arr[-1:]
        pad = [(0, n_frames - len(cut))] + [(0, 0)] * (cut.ndim - 1)
        return np.pad(cut, pad, mode="edge").astype(np.float32)

    if sample.lmk is not None:
        out["lmk"] = frames(sample.lmk)
    if sample.mm is not None:
        out["mm"] = {k: frames(sample.mm[k]) for k in MM_FRAME_KEYS}
        out["shape"] = sample.mm["shape"].astype(np.float32) if "shape" in sample.mm else None
    return out


def item_seed(seed: int, round_: int, stream: int, position: int) -> int:
    """A sample's own seed (non-negative int64), a pure function of where the loader reads it.

    Transforms seed their randomness (augmentation) from it, so a resumed run, which replays the same
    (round, stream, position) for every sample, transforms each sample exactly as before.
    """
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in (seed, round_, stream, position)] + [2])
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))


def collate(items: list[dict], samples: list[Sample]) -> dict:
    """Stack cropped samples into a batch; lmk/mm only when every sample has them.

    `item_seed` [B] int64 is each item's `item_seed` (0 when the item has none); `start_frame` [B] where each
    window starts in its sample (frames), to place per-sample timings such as `meta["phones"]` in it.
    """
    batch = {
        "wav": torch.from_numpy(np.stack([it["wav"] for it in items])),
        "wav_len": torch.tensor([it["wav_len"] for it in items]),
        "frames_len": torch.tensor([it["frames_len"] for it in items]),
        "item_seed": torch.tensor([it.get("item_seed", 0) for it in items], dtype=torch.int64),
        "start_frame": torch.tensor([it.get("start_frame", 0) for it in items]),
        "keys": [s.key for s in samples],
        "speaker": [str(s.meta.get("speaker")) for s in samples],
        "meta": [s.meta for s in samples],
    }
    if all("lmk" in it for it in items):
        batch["lmk"] = torch.from_numpy(np.stack([it["lmk"] for it in items]))
    if all("mm" in it for it in items):
        batch["mm"] = {k: torch.from_numpy(np.stack([it["mm"][k] for it in items])) for k in MM_FRAME_KEYS}
        if all(it["shape"] is not None for it in items):
            batch["mm"]["shape"] = torch.from_numpy(np.stack([it["shape"] for it in items]))
    return batch


@dataclass
class _Plan:
    shard_urls: list[str]
    rank: int
    world_size: int
    num_workers: int


class ShardStream(IterableDataset):
    """The per-rank dataset handed to a DataLoader; each worker reads its own stream."""

    def __init__(self, plan: _Plan, cfg: LoaderConfig, transform: Callable[[dict], dict] | None):
        self.plan, self.cfg, self.transform = plan, cfg, transform
        self.epoch = 0
        self.skip: dict[int, tuple[int, int]] = {}  # stream → (round, samples already consumed)

    def _stream_id(self) -> tuple[int, int]:
        info = get_worker_info()
        workers = max(1, self.plan.num_workers)
        worker = info.id if info is not None else 0
        return self.plan.rank * workers + worker, self.plan.world_size * workers

    def _shards(self, stream: int, n_streams: int, round_: int) -> list[str]:
        urls = self.plan.shard_urls
        if self.cfg.resampled:
            count = max(1, len(urls) // n_streams)
            return [urls[i] for i in _rng(self.cfg.seed, stream, round_).integers(0, len(urls), count)]
        order = _rng(self.cfg.seed, round_).permutation(len(urls))
        return [urls[i] for i in order[stream::n_streams]]

    def _shuffled(self, raw: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        buffer: list[dict] = []
        for item in raw:
            buffer.append(item)
            if len(buffer) >= self.cfg.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    def _round(self, stream: int, n_streams: int, round_: int, skip: int) -> Iterator[dict]:
        counters: dict = {}
        raw = (members for url in self._shards(stream, n_streams, round_) for members in iter_tar_samples(url, counters))
        items, samples, bad = [], [], 0
        position = 0
        for members in self._shuffled(raw, _rng(self.cfg.seed, round_, stream, 1)):
            position += 1
            if position <= skip:
                continue  # consumed before the checkpoint: replayed, not decoded
            if not self.cfg.decode:
                items.append(members)
                samples.append(None)
            else:
                try:
                    sample = decode(members)
                except ReplicaError as err:
                    bad += 1
                    log.warning("%s: skipping %s", members.get("__url__"), err)
                    continue
                offset = 0.0
                if self.cfg.random_crop and sample.duration_s > self.cfg.window_s:
                    slack = sample.duration_s - self.cfg.window_s
                    offset = float(_rng(self.cfg.seed, round_, stream, position).uniform(0, slack))
                items.append(crop_sample(sample, self.cfg.window_s, offset))
                items[-1]["item_seed"] = item_seed(self.cfg.seed, round_, stream, position)
                samples.append(sample)
            if len(items) == self.cfg.batch_size:
                yield self._emit(items, samples, stream, round_, position, bad + counters.get("bad_shards", 0))
                items, samples, bad = [], [], 0
                counters["bad_shards"] = 0
        bad += counters.get("bad_shards", 0)
        if items or bad:  # an empty batch still carries the skip count to the driver
            yield self._emit(items, samples, stream, round_, position, bad)

    def _emit(self, items, samples, stream, round_, position, bad) -> dict:
        if not items:
            batch = {"keys": []}
        elif self.cfg.decode:
            batch = collate(items, samples)
            if self.transform is not None:
                batch = self.transform(batch)
        else:
            # Raw mode measures the read path: the bytes are read and counted in the worker, not shipped.
            batch = {"keys": [m["__key__"] for m in items],
                     "bytes": sum(len(v) for m in items for k, v in m.items() if not k.startswith("__"))}
        batch["__state__"] = (stream, round_, position, bad)
        return batch

    def __iter__(self) -> Iterator[dict]:
        stream, n_streams = self._stream_id()
        round_, skip = self.skip.get(stream, (self.epoch, 0))
        if not self.cfg.resampled:
            if round_ != self.epoch:
                round_, skip = self.epoch, 0
            yield from self._round(stream, n_streams, round_, skip)
            return
        while True:
            yield from self._round(stream, n_streams, round_, skip)
            round_, skip = round_ + 1, 0


class ShardLoader:
    """A resumable, rank- and worker-split batch iterator over a dataset manifest."""

    def __init__(self, dataset_url: str, cfg: LoaderConfig | None = None, rank: int = 0, world_size: int = 1,
                 transform: Callable[[dict], dict] | None = None):
        if not 0 <= rank < world_size:
            raise ReplicaError(f"rank {rank}", f"must be in [0, {world_size})")
        self.cfg = cfg or LoaderConfig()
        self.manifest: Manifest = read_manifest(dataset_url)
        urls = self.manifest.shard_urls()
        if not urls:
            raise ReplicaError(self.manifest.url, "dataset has no shards")
        present: set[str] = set()  # one listing per shard folder (a mixture's shards live in their source datasets)
        for folder in sorted({u.rsplit("/", 1)[0] for u in urls}):
            present.update(storage.list_urls(folder))
        missing = [u for u in urls if u not in present]
        if missing:
            raise ReplicaError(missing[0], f"shard listed in the manifest is missing ({len(missing)} missing)")
        self.stream = ShardStream(_Plan(urls, rank, world_size, self.cfg.num_workers), self.cfg, transform)
        self.epoch = 0
        self.consumed: dict[int, tuple[int, int]] = {}
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.consumed = {s: c for s, c in self.consumed.items() if c[0] == epoch}

    def state_dict(self) -> dict:
        """Epoch, seed and per-stream progress: store it in the training checkpoint."""
        return {"epoch": self.epoch, "seed": self.cfg.seed, "resampled": self.cfg.resampled,
                "num_workers": self.cfg.num_workers, "world_size": self.stream.plan.world_size,
                "consumed": {str(s): list(c) for s, c in self.consumed.items()}, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpointed state (same seed, workers and world size)."""
        for key, mine in (("seed", self.cfg.seed), ("num_workers", self.cfg.num_workers),
                          ("world_size", self.stream.plan.world_size)):
            if state.get(key) != mine:
                raise ReplicaError(f"loader state {key}={state.get(key)}",
                                   f"cannot resume exactly with {key}={mine}")
        self.epoch = int(state["epoch"])
        self.consumed = {int(s): (int(c[0]), int(c[1])) for s, c in state["consumed"].items()}
        self.skipped = int(state.get("skipped", 0))

    def __iter__(self) -> Iterator[dict]:
        self.stream.epoch = self.epoch
        self.stream.skip = dict(self.consumed)
        workers = self.cfg.num_workers
        loader = DataLoader(self.stream, batch_size=None, num_workers=workers,
                            persistent_workers=False, prefetch_factor=4 if workers else None)
        for batch in loader:
            stream, round_, position, bad = batch.pop("__state__")
            self.consumed[stream] = (round_, position)
            self.skipped += bad
            if batch["keys"]:
                yield batch
        if not self.cfg.resampled:
            self.epoch += 1
            self.consumed = {}


def dataset_speakers(dataset_url: str) -> list[str]:
    """Sorted speaker names of a dataset: from its manifest's `info.speakers`, else by scanning its shards."""
    manifest = read_manifest(dataset_url)
    if manifest.info.get("speakers"):
        return sorted(manifest.info["speakers"])
    speakers, counters = set(), {}
    for url in manifest.shard_urls():
        for members in iter_tar_samples(url, counters):
            if "json" in members:
                try:
                    speakers.add(str(json.loads(members["json"]).get("speaker")))
                except ValueError:
                    continue
    return sorted(speakers)


def iter_samples(dataset_url: str, limit: int | None = None) -> Iterator[Sample]:
    """Every decodable sample of a dataset in manifest order, whole (no crop): for evaluation."""
    counters: dict = {}
    count = 0
    for url in read_manifest(dataset_url).shard_urls():
        for members in iter_tar_samples(url, counters):
            try:
                sample = decode(members)
            except ReplicaError as err:
                log.warning("%s: skipping %s", url, err)
                continue
            yield sample
            count += 1
            if limit is not None and count >= limit:
                return
