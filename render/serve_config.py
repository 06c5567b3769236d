"""The `serve:` section of the run config: how `replica serve` (the Ray Serve application in `render.serve`)
listens, whom it lets in, how much it accepts, and how its renderers scale and cache replicas.

Kept apart from `render.serve` so loading a config never imports Ray Serve or FastAPI.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from datasets.config import Section


class ServeConfig(Section):
    """The HTTP service that renders any replica in storage on demand."""

    host: str = "127.0.0.1"
    """Address the HTTP proxy binds (0.0.0.0 to accept other machines)."""
    port: int = Field(8000, ge=1, le=65535)
    """HTTP port of the Serve proxy."""
    auth_token_env: str = "REPLICA_SERVE_TOKEN"
    """Environment variable holding the bearer token every route but /healthz requires; unset or empty: no auth."""
    rate_limit_per_minute: int = Field(120, ge=0)
    """Requests per minute one token (or, without auth, one client address) may make; 0: unlimited."""
    rate_burst: int = Field(20, ge=1)
    """Requests one token may make at once before the per-minute rate applies."""
    max_chars: int = Field(2000, ge=1)
    """Longest script accepted, in characters (longer: 400)."""
    max_body_bytes: int = Field(10 * 2**20, ge=1024)
    """Largest request body accepted, in bytes (larger: 413); base64 audio counts at its encoded size."""
    cache_size: int = Field(4, ge=1)
    """Replicas one renderer holds in memory (least recently used evicted; others load from storage)."""
    min_renderers: int = Field(1, ge=0)
    """Fewest renderer replicas the autoscaler keeps."""
    max_renderers: int = Field(4, ge=1)
    """Most renderer replicas the autoscaler starts."""
    renders_per_renderer: int = Field(2, ge=1)
    """Requests one renderer works on at once; the autoscaler adds renderers above this."""
    renderer_cpus: float = Field(1.0, ge=0)
    """CPUs each renderer replica reserves."""
    renderer_gpus: float = Field(0.0, ge=0)
    """GPUs (fractional) each renderer replica reserves; 0 renders on CPU."""
    replicas: str | None = None
    """Folder of replica bundles served; a request's replica_id names one (default: <storage.root>/replicas)."""
    jobs: str | None = None
    """Folder of job states and finished videos (default: <storage.root>/serve)."""
    verify: bool = True
    """Re-hash a bundle's artifacts when a renderer loads it."""
    job_retries: int = Field(1, ge=0)
    """Times a job is re-run when its renderer replica dies under it, before it fails."""
    stale_after_s: float = Field(120.0, gt=0)
    """A running job whose state was not updated for this long is reported failed (its renderer is gone)."""

    @model_validator(mode="after")
    def _bounds(self) -> "ServeConfig":
        if self.min_renderers > self.max_renderers:
            raise ValueError(f"min_renderers ({self.min_renderers}) exceeds max_renderers ({self.max_renderers})")
        return self
