"""Typed settings, read once from ``BATCHPRESS_*`` environment variables.

Every default runs the embedded mode (SQLite, a filesystem queue, local image storage) with no setup.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATCHPRESS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("./data")
    database_url: str = ""
    broker_url: str = ""
    # Several deployments can share one broker by using different queue names.
    queue_name: str = "batchpress"
    public_base_url: str = ""
    # API processes sharing the port. One renders and caches each status answer once; a second doubles how many
    # polls a second a 2-core machine answers (docs/performance.md).
    api_workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1, le=64)
    worker_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # Compression yields the CPU to the API on a shared machine: status answers stay fast while a batch runs, and
    # an idle API costs the batch nothing. 0 keeps the worker at the normal priority.
    worker_nice: int = Field(default=10, ge=0, le=19)
    # MiB past which a pool process is replaced: the per-image budget, so only a leak reaches it (docs/security.md).
    worker_max_rss_mb: int = Field(default=600, ge=0)

    # How long a claimed image stays a worker's without a heartbeat: the worker's process renews its leases four
    # times a lease while it lives, so this is how soon a dead worker's images go to another, not how long an
    # image may take.
    lease_seconds: float = Field(default=10.0, gt=0)
    # How often each worker's sweeper looks for lapsed leases, lost messages, unfinished requests and due webhooks.
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    # Finished requests older than this many days are deleted with their outputs (those no other request lists);
    # 0 keeps everything.
    retention_days: int = Field(default=30, ge=0)

    download_connect_timeout: float = Field(default=5.0, gt=0)
    download_read_timeout: float = Field(default=20.0, gt=0)
    max_image_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=50_000_000, gt=0)
    # Small WebP previews of every input and output, for the web page and other lists of many images; false saves
    # their CPU (docs/performance.md, "Previews").
    previews: bool = True
    # CPU seconds one image may spend on decode and encode before it fails for good (processing/cpu_budget.py).
    max_image_seconds: float = Field(default=20.0, gt=0)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_csv_rows: int = Field(default=100_000, gt=0)
    # Whole-download deadline per image (connect, redirects, body), whatever the per-read timeouts allow.
    download_total_timeout: float = Field(default=60.0, gt=0)
    # At most this many downloads at once from one host, per worker process, so one slow origin cannot starve
    # the rest.
    download_per_host_concurrency: int = Field(default=4, ge=1)
    # Outbound requests (image downloads, webhooks) refuse loopback, private, link-local and other internal
    # addresses unless this is on (local development, the test suite) or the host is allow-listed.
    allow_private_networks: bool = False
    # Comma-separated host names (exact, case-insensitive) that may resolve to internal addresses.
    outbound_allow_hosts: str = ""

    # Comma-separated API keys; when set, every API route but health checks, served images, the docs and the (signed)
    # processing callback needs one (``Authorization: Bearer <key>`` or ``X-API-Key``). The API keeps only their
    # SHA-256 digests (api/auth.py).
    api_keys: SecretStr = SecretStr("")
    log_format: Literal["text", "json"] = "text"

    # Where outputs go: files under data_dir served by the API, or an S3-compatible bucket.
    storage: Literal["local", "s3"] = "local"
    s3_bucket: str = ""
    s3_prefix: str = ""
    # Empty means AWS itself; set it for MinIO, R2, Ceph and the like.
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    # Both empty means boto3's default credential chain (environment, profile, instance role).
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")
    # When set, output URLs are this base plus the object key; otherwise they are presigned GET URLs.
    s3_public_base_url: str = ""
    # SigV4 caps a presigned URL at seven days.
    s3_presign_seconds: int = Field(default=604_800, ge=1, le=604_800)

    # Completion notifications (Standard Webhooks). The URL is the default for uploads that name none.
    webhook_url: str = ""
    # One or more "whsec_..." secrets separated by spaces (several while rotating); generated when empty.
    webhook_secret: SecretStr = SecretStr("")
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    # Seconds to wait before each attempt, comma-separated; its length is the number of attempts.
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,86400"
    # Verifies callbacks from an external image processor; the endpoint refuses everything while it is empty.
    processing_callback_secret: SecretStr = SecretStr("")

    @property
    def webhook_delays(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'batchpress.db'}"
        elif self.database_url.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the driver we ship; SQLAlchemy's bare postgresql:// means psycopg2.
            self.database_url = "postgresql+psycopg://" + self.database_url.split("://", 1)[1]
        if not self.broker_url:
            self.broker_url = "filesystem://"
        if not self.public_base_url:
            shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
            self.public_base_url = f"http://{shown_host}:{self.port}"
        self.public_base_url = self.public_base_url.rstrip("/")
        self.s3_prefix = self.s3_prefix.strip("/")
        self.s3_public_base_url = self.s3_public_base_url.rstrip("/")
        try:
            delays = self.webhook_delays
        except ValueError:
            raise ValueError("BATCHPRESS_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds") from None
        if not delays or any(d < 0 for d in delays):
            raise ValueError("BATCHPRESS_WEBHOOK_RETRY_SCHEDULE needs at least one delay, none negative")
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("BATCHPRESS_STORAGE=s3 needs BATCHPRESS_S3_BUCKET")
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key.get_secret_value()):
            raise ValueError(
                "set both BATCHPRESS_S3_ACCESS_KEY_ID and BATCHPRESS_S3_SECRET_ACCESS_KEY, or neither "
                "to use boto3's default credential chain"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"
