"""moto's standalone S3 server on 127.0.0.1: a real S3 HTTP API that boto3 (and batchpress) talk to."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.support.servers import free_port

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


@dataclass
class Moto:
    endpoint: str
    client: Any

    def new_bucket(self) -> str:
        name = f"bp-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def make_public(self, bucket: str) -> None:
        """What a public-URL deployment does: a bucket policy letting anyone read objects."""
        statement = {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
        self.client.put_bucket_policy(
            Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listing = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))


@contextmanager
def moto_server() -> Iterator[Moto]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {process.returncode}")
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not answer in 30 s") from None
                time.sleep(0.1)
        yield Moto(endpoint, boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
