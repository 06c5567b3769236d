"""Storage: every artifact lives at a URL — a plain path, `file://…` or `s3://…`.

One small module over fsspec that the whole system reads and writes through, so a dataset, a
training run or a replica moves from a laptop folder to an S3 bucket by changing its URL.

Rules it enforces:
- Writes are atomic: a reader sees the old object or the new one, never half of one. Locally we
  write a temp file beside the target and `os.replace` it; object stores publish an object only
  when its (single or multipart) upload completes, and an upload that fails is aborted.
- Errors name the URL and the reason in one line (`ReplicaError`), not a stack of botocore frames.

S3-compatible endpoints (MinIO, Ceph, moto) are chosen by `configure(endpoint_url=...)`, which the
runtime calls once from the run's config; credentials come from the usual AWS chain.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from dataclasses import dataclass
from typing import IO, Iterator

import fsspec

from datasets.errors import ReplicaError


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible object store (all optional: defaults are AWS's)."""

    endpoint_url: str | None = None
    region: str | None = None
    key: str | None = None
    secret: str | None = None
    anon: bool = False
    connect_timeout_s: float = 5.0
    retries: int = 2


_s3_options = S3Options()


def configure(options: S3Options) -> None:
    """Set the process-wide S3 options (called once by the runtime, and in each Ray worker)."""
    global _s3_options
    _s3_options = options


def s3_options() -> S3Options:
    """The S3 options in force in this process."""
    return _s3_options


def is_remote(url: str) -> bool:
    """True when `url` names an object store rather than the local disk."""
    return "://" in str(url) and not str(url).startswith("file://")


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL with '/', e.g. join("s3://b/run", "ckpt", "x.pt")."""
    out = str(url).rstrip("/")
    for part in parts:
        out = f"{out}/{str(part).strip('/')}"
    return out


def _filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    url = str(url)
    if url.startswith("s3://"):
        opts = _s3_options
        kwargs: dict = {
            "anon": opts.anon,
            "config_kwargs": {
                "connect_timeout": opts.connect_timeout_s,
                "read_timeout": max(60.0, opts.connect_timeout_s),
                "retries": {"max_attempts": opts.retries, "mode": "standard"},
            },
        }
        client_kwargs = {}
        if opts.endpoint_url:
            client_kwargs["endpoint_url"] = opts.endpoint_url
        if opts.region:
            client_kwargs["region_name"] = opts.region
        if client_kwargs:
            kwargs["client_kwargs"] = client_kwargs
        if opts.key:
            kwargs["key"], kwargs["secret"] = opts.key, opts.secret
        fs = fsspec.filesystem("s3", **kwargs)
        return fs, url[len("s3://"):]
    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" in url:
        protocol = url.split("://", 1)[0]
        try:
            fs = fsspec.filesystem(protocol)
        except (ValueError, ImportError) as err:
            raise ReplicaError(url, f"unsupported storage scheme {protocol!r}") from err
        return fs, url.split("://", 1)[1]
    return fsspec.filesystem("file"), os.path.abspath(url)


def _translate(url: str, err: BaseException) -> ReplicaError:
    """Turn fsspec/botocore/aiohttp failures into one readable line naming the URL."""
    name = type(err).__name__
    text = str(err)
    if isinstance(err, FileNotFoundError) or "NoSuchKey" in text or "Not Found" in text:
        return ReplicaError(url, "no such object")
    if "NoSuchBucket" in text:
        return ReplicaError(url, "no such bucket")
    if name in ("NoCredentialsError", "PartialCredentialsError") or "Unable to locate credentials" in text:
        return ReplicaError(url, "no S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
    if any(code in text for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden")):
        return ReplicaError(url, f"access denied: bad or insufficient S3 credentials ({name})")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionError",
                "ServerDisconnectedError") or "Could not connect" in text or "Connect timeout" in text:
        endpoint = _s3_options.endpoint_url or "the default AWS endpoint"
        return ReplicaError(url, f"storage endpoint unreachable ({endpoint})")
    if isinstance(err, PermissionError):
        return ReplicaError(url, "permission denied")
    if isinstance(err, IsADirectoryError):
        return ReplicaError(url, "is a folder, not an object")
    first_line = text.strip().splitlines()[0] if text.strip() else name
    return ReplicaError(url, f"{name}: {first_line}")


@contextlib.contextmanager
def _errors(url: str) -> Iterator[None]:
    try:
        yield
    except ReplicaError:
        raise
    except Exception as err:  # noqa: BLE001 - every storage failure becomes one line for the user
        raise _translate(url, err) from err


def read_bytes(url: str) -> bytes:
    """The whole object at `url`."""
    fs, path = _filesystem(url)
    with _errors(url):
        if fs.isdir(path) and not fs.isfile(path):
            raise IsADirectoryError(path)
        return fs.cat_file(path)


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def read_json(url: str):
    data = read_bytes(url)
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise ReplicaError(url, f"not valid JSON ({err.msg} at line {err.lineno})") from err


def write_bytes(url: str, data: bytes) -> None:
    """Atomically replace the object at `url` with `data` (parents are created as needed)."""
    with open_write(url) as f:
        f.write(data)


def write_text(url: str, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


def write_json(url: str, obj, indent: int = 2) -> None:
    write_text(url, json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n")


def open_read(url: str) -> IO[bytes]:
    """A streaming binary reader for `url` (for large objects such as shards): use it in `with`, or close it."""
    fs, path = _filesystem(url)
    with _errors(url):
        return fs.open(path, "rb", block_size=8 * 2**20) if is_remote(url) else open(path, "rb")


@contextlib.contextmanager
def open_write(url: str) -> Iterator[IO[bytes]]:
    """A binary writer whose object appears at `url` only if the block exits cleanly.

    Locally the bytes go to a hidden temp file in the target folder and are renamed into place;
    on an object store the upload is completed on success and aborted on error.
    """
    fs, path = _filesystem(url)
    if not is_remote(url):
        folder = os.path.dirname(path) or "."
        with _errors(url):
            os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            with _errors(url):
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    # Object stores: buffer small objects and publish with one PUT; large ones stream as a
    # multipart upload, which S3 makes visible only on completion.
    buffer = _SpillBuffer()
    yield buffer
    with _errors(url):
        if buffer.spilled is None:
            fs.pipe_file(path, buffer.getvalue())
        else:
            buffer.spilled.flush()
            fs.put_file(buffer.spilled.name, path)
    buffer.close()


class _SpillBuffer(io.RawIOBase):
    """An in-memory write buffer that moves to a temp file past 64 MB (for big shard uploads)."""

    LIMIT = 64 * 2**20

    def __init__(self):
        super().__init__()
        self._mem = io.BytesIO()
        self.spilled = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.spilled is None and self._mem.tell() + len(data) > self.LIMIT:
            import tempfile

            self.spilled = tempfile.NamedTemporaryFile(prefix="replica-upload-", delete=True)
            self.spilled.write(self._mem.getvalue())
            self._mem = io.BytesIO()
        target = self.spilled if self.spilled is not None else self._mem
        target.write(data)
        return len(data)

    def getvalue(self) -> bytes:
        return self._mem.getvalue()

    def close(self) -> None:
        if self.spilled is not None:
            self.spilled.close()
        super().close()


def exists(url: str) -> bool:
    """True when an object or folder exists at `url`."""
    fs, path = _filesystem(url)
    with _errors(url):
        return fs.exists(path)


def size(url: str) -> int:
    """Size of the object at `url` in bytes."""
    fs, path = _filesystem(url)
    with _errors(url):
        return int(fs.size(path))


def list_urls(url: str, recursive: bool = False) -> list[str]:
    """URLs of the objects under the folder `url` (sorted; hidden temp files left out)."""
    fs, path = _filesystem(url)
    with _errors(url):
        if not fs.exists(path):
            return []
        entries = fs.find(path) if recursive else fs.ls(path, detail=False)
    prefix = str(url).rstrip("/")
    base = path.rstrip("/")
    out = []
    for entry in entries:
        rel = entry[len(base):].lstrip("/") if entry.startswith(base) else os.path.basename(entry)
        if not rel or os.path.basename(rel).startswith(".") and ".tmp-" in rel:
            continue
        out.append(join(prefix, rel))
    return sorted(out)


def remove(url: str, recursive: bool = False) -> None:
    """Delete the object (or, with `recursive`, the folder) at `url`; missing is an error."""
    fs, path = _filesystem(url)
    with _errors(url):
        if not fs.exists(path):
            raise FileNotFoundError(path)
        fs.rm(path, recursive=recursive)


def local_path(url: str) -> str | None:
    """The local filesystem path for a local URL, else None."""
    if is_remote(url):
        return None
    return _filesystem(url)[1]


def check_reachable(url: str) -> None:
    """Write, read back and delete a tiny probe object under `url`; raises ReplicaError if not."""
    probe = join(url, f".replica-probe-{uuid.uuid4().hex[:8]}")
    payload = b"replica storage probe"
    if is_remote(url):
        fs, path = _filesystem(url)
        bucket = path.split("/", 1)[0]
        try:
            with _errors(url):
                fs.ls(bucket, refresh=True)  # unlike exists(), this surfaces connection errors
        except ReplicaError as err:
            if "no such object" in str(err):
                raise ReplicaError(url, "no such bucket") from err
            raise
    write_bytes(probe, payload)
    if read_bytes(probe) != payload:
        raise ReplicaError(url, "read back different bytes than written")
    remove(probe)


def arrow_filesystem(url: str):
    """(pyarrow filesystem, path) for `url`, for libraries that take pyarrow filesystems (Ray Train).

    Object stores go through our configured fsspec filesystem, so a custom endpoint is honoured.
    """
    import pyarrow.fs

    if not is_remote(url):
        return None, _filesystem(url)[1]
    fs, path = _filesystem(url)
    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), path


@contextlib.contextmanager
def local_copy(url: str) -> Iterator[str]:
    """A local path holding the object at `url` (the file itself when local, else a temp download)."""
    path = local_path(url)
    if path is not None:
        if not os.path.exists(path):
            raise ReplicaError(url, "no such object")
        yield path
        return
    import tempfile

    suffix = os.path.splitext(str(url))[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(read_bytes(url))
        tmp.flush()
        yield tmp.name


def upload_folder(local_dir: str, url: str) -> None:
    """Copy a local folder's files to `url` (each file written atomically)."""
    for folder, _, files in os.walk(local_dir):
        for name in files:
            src = os.path.join(folder, name)
            rel = os.path.relpath(src, local_dir)
            with open(src, "rb") as f:
                write_bytes(join(url, *rel.split(os.sep)), f.read())


def absolute(url: str) -> str:
    """`url` with a relative local path made absolute (object-store URLs unchanged).

    Anything handed to other processes needs this: Ray workers, Ray Train's above all, do not run
    in the driver's working directory.
    """
    if is_remote(url):
        return str(url)
    return os.path.abspath(str(url)[len("file://"):] if str(url).startswith("file://") else str(url))
