"""``batchpress doctor``: check what this machine needs to run batchpress, one line per check, with what to do.

Each check is independent and only reads, or writes and removes a scratch file; a check that cannot run (settings
that do not load) fails without stopping the others that do not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import typer
from pydantic import ValidationError

from batchpress.cli.dependencies import CONNECT_TIMEOUT_SECONDS, broker_not_ready, database_cause, probe_engine
from batchpress.cli.startup import (
    StartupError,
    check_broker_transport,
    check_database_url,
    settings_problems,
    shown_url,
)
from batchpress.config import Settings
from batchpress.observability.disk import nearly_full
from batchpress.observability.probes import ProbeFailed, first_line, mask_url, probe_database, probe_storage
from batchpress.storage import make_storage


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def pillow_checks() -> Iterator[Check]:
    import PIL
    from PIL import features

    yield Check("pillow", True, f"Pillow {PIL.__version__}")
    if not features.check("jpg"):
        yield Check("jpeg", False, "Pillow was built without JPEG", "install Pillow's wheel from PyPI")
    elif features.check_feature("libjpeg_turbo"):
        yield Check("jpeg", True, f"libjpeg-turbo {features.version('libjpeg_turbo')}")
    else:
        yield Check("jpeg", True, f"libjpeg {features.version('jpg')} (not libjpeg-turbo: JPEG work is slower)")
    if features.check("zlib"):
        yield Check("png", True, f"zlib {features.version('zlib')}")
    else:
        yield Check("png", False, "Pillow was built without zlib", "install Pillow's wheel from PyPI")
    if features.check("webp"):
        yield Check("webp", True, f"libwebp {features.version('webp')}")
    else:
        yield Check("webp", False, "Pillow was built without WebP", "install Pillow's wheel from PyPI")
    if "avif" in features.modules and features.check("avif"):
        yield Check("avif", True, f"libavif {features.version('avif')}")
    else:
        yield Check("avif", True, "not available (optional; Pillow 11.2+ wheels include it)")


def simplejpeg_check() -> Check:
    """simplejpeg encodes and decodes most JPEGs (the fast path of `compress_image`), with its own libjpeg-turbo."""
    try:
        import simplejpeg
    except ImportError as exc:
        return Check("simplejpeg", False, f"cannot import: {first_line(exc)}", "pip install simplejpeg")
    return Check("simplejpeg", True, f"simplejpeg {simplejpeg.__version__}")


# The encoders of effort "max" (docs/performance.md): the check's name, import name, distribution and role.
_SMALLEST_ENCODERS = (
    ("jpegli", "pyjpegli", "pyjpegli", "colour JPEGs"),
    ("mozjpeg", "mozjpeg_lossless_optimization", "mozjpeg-lossless-optimization", "lossless JPEG rewrite"),
    ("oxipng", "oxipng", "pyoxipng", "PNG recompression"),
)


def smallest_encoder_checks() -> Iterator[Check]:
    """The encoders behind the default ``effort=max``: a missing one fails every image that needs it."""
    import importlib
    import importlib.metadata

    for name, module, dist, role in _SMALLEST_ENCODERS:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            yield Check(name, False, f"cannot import {module} ({role}): {first_line(exc)}", f"pip install {dist}")
            continue
        yield Check(name, True, f"{dist} {importlib.metadata.version(dist)} ({role})")


def settings_lines(settings: Settings) -> list[str]:
    """The effective settings worth seeing, never a secret."""
    storage = (
        f"s3 bucket {settings.s3_bucket!r}"
        + (f" prefix {settings.s3_prefix!r}" if settings.s3_prefix else "")
        + f" at {settings.s3_endpoint_url or 'AWS'} ({settings.s3_region})"
        if settings.storage == "s3"
        else f"local, {settings.images_dir}"
    )
    keys = "set" if settings.api_keys.get_secret_value().strip() else "not set (the API is open)"
    return [
        f"data dir      {settings.data_dir}",
        f"database      {mask_url(settings.database_url)}",
        f"broker        {mask_url(settings.broker_url)} (queue {settings.queue_name!r})",
        f"storage       {storage}",
        f"public URL    {settings.public_base_url}",
        f"API keys      {keys}",
    ]


def database_check(settings: Settings) -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import make_url

    from batchpress.db.migrate import alembic_config

    shown = shown_url(settings.database_url)
    try:
        check_database_url(settings)
    except StartupError as exc:
        return Check("database", False, exc.problem, exc.fix)
    url = make_url(settings.database_url)
    if settings.is_sqlite and url.database and not Path(url.database).exists():
        return Check("database", True, f"{url.database} does not exist yet; `batchpress serve` or `migrate` creates it")
    heads = set(ScriptDirectory.from_config(alembic_config(settings)).get_heads())
    engine = probe_engine(settings)
    try:
        probe_database(engine, CONNECT_TIMEOUT_SECONDS)
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except ProbeFailed as failure:
        try:
            cause = database_cause(failure, settings)
        except StartupError as refused:
            return Check("database", False, refused.problem, refused.fix)
        return Check("database", False, f"cannot reach {shown}: {cause}", "start it or fix BATCHPRESS_DATABASE_URL")
    finally:
        engine.dispose()
    if current == heads:
        return Check("database", True, f"{shown} reachable, schema at head {', '.join(sorted(heads))}")
    if not current:
        return Check(
            "database", True, f"{shown} reachable and empty; `batchpress serve` or `migrate` creates the schema"
        )
    script = ScriptDirectory.from_config(alembic_config(settings))
    if unknown := sorted(rev for rev in current if script.get_revision(rev) is None):
        return Check(
            "database", False, f"{shown} is at {', '.join(unknown)}, newer than this batchpress", "upgrade batchpress"
        )
    return Check(
        "database",
        False,
        f"{shown} is at {', '.join(sorted(current))}, head is {', '.join(sorted(heads))}",
        "run `batchpress migrate` (serve does it when it starts)",
    )


def broker_check(settings: Settings) -> Check:
    shown = shown_url(settings.broker_url)
    try:
        check_broker_transport(settings)
        cause = broker_not_ready(settings)
    except StartupError as exc:
        return Check("broker", False, exc.problem, exc.fix)
    if cause is not None:
        return Check("broker", False, f"cannot use {shown}: {cause}", "start the broker or fix BATCHPRESS_BROKER_URL")
    if settings.uses_filesystem_broker:
        return Check("broker", True, f"{shown}: queue folders under {settings.queue_dir} are writable")
    return Check("broker", True, f"{shown} reachable")


def storage_check(settings: Settings) -> Check:
    storage = make_storage(settings)
    try:
        probe_storage(storage)
    except ProbeFailed as failure:
        fix = (
            "check the BATCHPRESS_S3_* settings and credentials"
            if settings.storage == "s3"
            else f"make {settings.data_dir} writable for this user, or fix BATCHPRESS_DATA_DIR"
        )
        return Check("storage", False, f"cannot write: {failure.cause}", fix)
    if settings.storage == "s3":
        from batchpress.storage.s3 import S3Storage

        endpoint = storage.client.meta.endpoint_url if isinstance(storage, S3Storage) else settings.s3_endpoint_url
        return Check("storage", True, f"S3 bucket {settings.s3_bucket!r} at {endpoint}")
    if warning := nearly_full(settings):
        return Check("storage", True, f"local, {settings.images_dir} writable; WARNING: {warning}")
    return Check("storage", True, f"local, {settings.images_dir} writable")


def outbound_check(settings: Settings) -> Check:
    if settings.allow_private_networks:
        return Check("outbound", True, "private networks ALLOWED: downloads and webhooks may reach internal addresses")
    hosts = [h.strip() for h in settings.outbound_allow_hosts.split(",") if h.strip()]
    allowed = f"; allowed hosts: {', '.join(hosts)}" if hosts else ""
    return Check("outbound", True, f"private and internal addresses refused{allowed}")


def api_check(settings: Settings) -> Check:
    from batchpress.cli.serve import open_to_network_warning

    if open_to_network_warning(settings):
        return Check(
            "api",
            False,
            f"listens on {settings.host or 'every address'}:{settings.port} with no API keys",
            "set BATCHPRESS_API_KEYS, or BATCHPRESS_HOST=127.0.0.1",
        )
    return Check("api", True, f"listens on {settings.host}:{settings.port}")


def show(check: Check) -> None:
    mark = typer.style("ok  ", fg="green") if check.ok else typer.style("FAIL", fg="red", bold=True)
    typer.echo(f"{mark}  {check.name:<10} {check.detail}" + (f" -> {check.fix}" if check.fix else ""))


def run_checks() -> int:
    """Print every check; 0 when all pass, 1 otherwise."""
    results = [*pillow_checks(), simplejpeg_check(), *smallest_encoder_checks()]
    for check in results:
        show(check)
    try:
        settings = Settings()
    except ValidationError as exc:
        for problem in settings_problems(exc):
            show(Check("settings", False, problem.problem, problem.fix))
        return 1
    show(Check("settings", True, "loaded from the environment"))
    for line in settings_lines(settings):
        typer.echo(f"                 {line}")
    checks: list[Callable[[Settings], Check]] = [database_check, broker_check, storage_check, outbound_check, api_check]
    for run in checks:
        try:
            check = run(settings)
        except Exception as exc:
            check = Check(run.__name__.removesuffix("_check"), False, f"check crashed: {first_line(exc)}")
        show(check)
        results.append(check)
    return 0 if all(check.ok for check in results) else 1
