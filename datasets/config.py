"""Typed configuration sections, the base every package's config models share.

A run has one config (`launch.config.ReplicaConfig`) composed of sections; each package declares
its own section next to the code it configures, as a `Section` subclass with a docstring per
field. Unknown keys and wrong types are rejected (pydantic, `extra="forbid"`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from datasets.storage import S3Options


class Section(BaseModel):
    """Base for config sections: strict about unknown keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class StorageConfig(Section):
    """Where a run's artifacts go and how to reach the object store."""

    root: str = "./runs"
    """Root URL for runs, datasets and replicas: a path, file://… or s3://bucket/prefix."""
    endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, Ceph, …); None means AWS or AWS_ENDPOINT_URL."""
    region: str | None = None
    """S3 region name, when the endpoint needs one."""
    anon: bool = False
    """Access the bucket anonymously (public datasets)."""
    connect_timeout_s: float = Field(5.0, gt=0)
    """Seconds to wait for the endpoint before calling it unreachable."""

    def s3_options(self) -> S3Options:
        return S3Options(endpoint_url=self.endpoint_url, region=self.region, anon=self.anon,
                         connect_timeout_s=self.connect_timeout_s)
