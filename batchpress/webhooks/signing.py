"""Secrets and signatures (Standard Webhooks, through the ``standardwebhooks`` library).

A setting may hold several ``whsec_`` secrets separated by spaces: outgoing messages carry one signature per secret
(so receivers can rotate keys), and incoming ones are accepted when any secret verifies them.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
from pathlib import Path

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError

from batchpress.config import Settings

SECRET_FILE = "webhook_secret"  # noqa: S105  (a file name, not a secret)


class InvalidSignature(Exception):
    """The message is not signed by any of our secrets, or its timestamp is outside five minutes."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_secrets(settings: Settings) -> str:
    """The configured secrets, or the one generated under the data directory on first use."""
    configured = settings.webhook_secret.get_secret_value().strip()
    if configured:
        return configured
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        _create_once(path, new_secret())
    return path.read_text().strip()


def _create_once(path: Path, secret: str) -> None:
    """Write the secret only if no other process got there first, readable by the owner alone. The file appears
    complete or not at all (written aside, then hard-linked into place), so a second API process or a worker
    starting at the same moment never reads it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    try:
        os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        aside.unlink()


def signature_headers(secret_list: str, msg_id: str, timestamp: dt.datetime, body: str) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secret_list.split())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }


def verify(secret_list: str, body: bytes, headers: dict[str, str]) -> None:
    """Return when any secret verifies the body's signature; raise ``InvalidSignature`` otherwise.

    The body is not parsed here: a correctly signed body that is not JSON is the caller's 422, not a 401.
    """
    reason = "no secret configured"
    for secret in secret_list.split():
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            return
        # The library lets malformed headers or bodies escape as ValueError (binascii, unpacking, UTF-8).
        except (WebhookVerificationError, EmptyWebhookSecretError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
    raise InvalidSignature(reason)
