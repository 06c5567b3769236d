"""WebDataset shards on any storage, and the manifest that makes a dataset visible.

A dataset is a folder of tar shards plus `manifest.json`. Shards are written by webdataset's own
`TarWriter`, so any WebDataset reader opens them (`webdataset_urls` hands plain
`webdataset.WebDataset` the URLs, s3:// included). Writers roll shards by size and count,
hash them while they stream, and the manifest — every shard's URL (relative to the folder), sample
count, byte size and sha256, the schema and tool versions — is written last: readers trust only
the manifest, so a dataset is never half-visible. Many writers (one Ray task per input file) can
each write their own shards under a distinct prefix and hand their `ShardInfo`s to the driver,
which writes one manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import IO

import webdataset

from datasets import storage
from datasets.errors import ReplicaError
from datasets.schema import SCHEMA_VERSION, Sample, encode

MANIFEST = "manifest.json"


def tool_version() -> str:
    try:
        return f"replica {version('replica')}"
    except PackageNotFoundError:
        return "replica (source)"


@dataclass
class ShardInfo:
    """One finished shard: `url` is relative to the dataset folder."""

    url: str
    samples: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """A dataset's table of contents (what `manifest.json` holds)."""

    url: str
    shards: list[ShardInfo]
    schema: int = SCHEMA_VERSION
    tool: str = ""
    created: str = ""
    info: dict = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return self.url.rsplit("/", 1)[0] if "/" in self.url else "."

    @property
    def num_samples(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def num_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def shard_urls(self) -> list[str]:
        """Absolute URLs of the shards, in manifest order."""
        return [s.url if "://" in s.url or s.url.startswith("/") else storage.join(self.folder, s.url)
                for s in self.shards]


class _HashingWriter(io.RawIOBase):
    def __init__(self, sink):
        super().__init__()
        self.sink, self.sha, self.count = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha.update(data)
        self.sink.write(data)
        self.count += len(data)
        return len(data)


class ShardWriter:
    """Write samples into `<folder>/<prefix>-NNNNNN.tar`, rolling by bytes and sample count.

        with ShardWriter("s3://bucket/ds", max_count=1000) as writer:
            for sample in samples:
                writer.write(sample)
        write_manifest("s3://bucket/ds", writer.shards)
    """

    def __init__(self, folder: str, prefix: str = "shard", max_bytes: int = 512 * 2**20, max_count: int = 10_000):
        if max_count < 1 or max_bytes < 1:
            raise ReplicaError(folder, "max_count and max_bytes must be positive")
        self.folder, self.prefix = folder, prefix
        self.max_bytes, self.max_count = max_bytes, max_count
        self.shards: list[ShardInfo] = []
        self._ctx = self._tar = self._hash = None
        self._name = ""
        self._count = 0
        self._keys: set[str] = set()

    def _open(self) -> None:
        self._name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._ctx = storage.open_write(storage.join(self.folder, self._name))
        self._hash = _HashingWriter(self._ctx.__enter__())
        # Members arrive encoded by the schema (encoder=False); a fixed mtime makes the same samples
        # give the same bytes (TarWriter's other header fields are constants).
        self._tar = webdataset.TarWriter(self._hash, encoder=False, mtime=0)
        self._count = 0

    def _finish(self) -> None:
        self._tar.close()
        self._ctx.__exit__(None, None, None)
        self.shards.append(ShardInfo(self._name, self._count, self._hash.count, self._hash.sha.hexdigest()))
        self._ctx = self._tar = self._hash = None

    def write(self, sample: Sample) -> None:
        """Validate, encode and append one sample (keys must be unique within the writer)."""
        if sample.key in self._keys:
            raise ReplicaError(f"sample {sample.key}", "duplicate key in this dataset")
        members = encode(sample)
        self._keys.add(sample.key)
        if self._tar is None:
            self._open()
        self._tar.write(members)
        self._count += 1
        if self._count >= self.max_count or self._hash.count >= self.max_bytes:
            self._finish()

    def close(self) -> list[ShardInfo]:
        if self._tar is not None:
            self._finish()
        return self.shards

    def abort(self) -> None:
        """Drop the shard being written (nothing partial becomes visible)."""
        if self._ctx is not None:
            self._hash.sink = io.BytesIO()  # let the tar writer finish into nothing before the upload is dropped
            self._tar.close()
            try:
                self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
            except RuntimeError:
                pass
            self._ctx = self._tar = self._hash = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_manifest(folder: str, shards: list[ShardInfo], info: dict | None = None) -> Manifest:
    """Publish a dataset: write `manifest.json` (last, atomically) listing `shards`."""
    manifest = Manifest(url=storage.join(folder, MANIFEST), shards=list(shards), tool=tool_version(),
                        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), info=info or {})
    storage.write_json(manifest.url, {
        "schema": manifest.schema, "tool": manifest.tool, "created": manifest.created,
        "num_samples": manifest.num_samples, "num_bytes": manifest.num_bytes,
        "shards": [asdict(s) for s in manifest.shards], "info": manifest.info,
    })
    return manifest


def manifest_url(url: str) -> str:
    """Accept a dataset folder or its manifest URL; return the manifest URL."""
    return url if url.endswith(".json") else storage.join(url, MANIFEST)


def read_manifest(url: str) -> Manifest:
    """Load a dataset's manifest (from the folder or the manifest URL); checks the schema version."""
    url = manifest_url(url)
    if not storage.exists(url):
        raise ReplicaError(url, "no manifest: not a dataset, or its writing never finished")
    data = storage.read_json(url)
    if data.get("schema") != SCHEMA_VERSION:
        raise ReplicaError(url, f"schema version {data.get('schema')} is not supported (expected {SCHEMA_VERSION})")
    try:
        shards = [ShardInfo(**s) for s in data["shards"]]
    except (KeyError, TypeError) as err:
        raise ReplicaError(url, f"malformed manifest ({err})") from err
    return Manifest(url=url, shards=shards, schema=data["schema"], tool=data.get("tool", ""),
                    created=data.get("created", ""), info=data.get("info", {}))


def webdataset_urls(manifest: Manifest) -> list[str]:
    """The dataset's shard URLs in manifest order, openable by plain `webdataset.WebDataset(urls)`.

    webdataset opens URLs through its `gopen_schemes` table, which has no `s3` entry; its docs pipe
    through `aws s3 cp`, a subprocess per shard that needs the AWS CLI and does not see the endpoint
    given to `storage.configure`. So we register `storage.open_read` in that table, webdataset's own
    extension point: it then reads s3:// through the same configured filesystem as replica's loader.
    """
    webdataset.gopen_schemes["s3"] = _open_for_webdataset
    return manifest.shard_urls()


def _open_for_webdataset(url: str, mode: str = "rb", bufsize: int = 8192, **_) -> IO[bytes]:
    if mode != "rb":
        raise ReplicaError(url, "webdataset only reads replica shards here; write them with ShardWriter")
    return storage.open_read(url)


def write_dataset(folder: str, samples, info: dict | None = None, **writer_args) -> Manifest:
    """Write an iterable of Samples as a dataset (shards, then the manifest)."""
    with ShardWriter(folder, **writer_args) as writer:
        for sample in samples:
            writer.write(sample)
    return write_manifest(folder, writer.shards, info)


def parse_mixture_source(spec: str) -> tuple[str, int]:
    """`URL` or `URL*K` (K ≥ 1: how many times the dataset's shards are listed) → (url, K)."""
    url, sep, times = spec.rpartition("*") if "*" in spec else (spec, "", "1")
    try:
        repeat = int(times)
    except ValueError:
        repeat = 0
    if not url or repeat < 1:
        raise ReplicaError(f"mixture source {spec!r}", "expected URL or URL*K with a whole K ≥ 1")
    return url, repeat


def mix_datasets(folder: str, sources: list[tuple[str, int]], info: dict | None = None) -> Manifest:
    """Publish a dataset made of other datasets' shards, without copying them: a manifest listing each
    source's shards (absolute URLs) `repeat` times, so a small corpus (a few real speakers) is drawn as
    often as a big one (hundreds of TTS voices). `info.mixture` records the sources, `info.speakers` the
    union of theirs when every source lists them. The sources must stay where they are."""
    if not sources:
        raise ReplicaError(folder, "a mixture needs at least one source dataset")
    shards: list[ShardInfo] = []
    parts, speakers = [], set()
    all_listed = True
    for url, repeat in sources:
        manifest = read_manifest(storage.absolute(url))
        if not manifest.shards:
            raise ReplicaError(manifest.url, "dataset has no shards")
        urls = manifest.shard_urls()
        for _ in range(repeat):
            shards += [ShardInfo(u, s.samples, s.bytes, s.sha256) for u, s in zip(urls, manifest.shards)]
        listed = manifest.info.get("speakers")
        all_listed &= bool(listed)
        speakers.update(listed or [])
        parts.append({"url": manifest.folder, "repeat": repeat, "samples": manifest.num_samples,
                      "speakers": len(listed) if listed else None})
    meta = {**(info or {}), "mixture": parts}
    if all_listed:
        meta["speakers"] = sorted(speakers)
    return write_manifest(folder, shards, meta)
