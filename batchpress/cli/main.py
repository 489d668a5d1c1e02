from __future__ import annotations

import typer

from batchpress.config import get_settings

app = typer.Typer(help="batchpress: bulk product-image compression.", no_args_is_help=True)


def _configure_logging() -> None:
    """Text or JSON lines (BATCHPRESS_LOG_FORMAT) on stderr, for this process and for uvicorn and Celery in it."""
    from batchpress.logs import configure_logging

    configure_logging(get_settings().log_format)


@app.command()
def serve(
    no_worker: bool = typer.Option(False, "--no-worker", help="Run the API only; workers run elsewhere."),
) -> None:
    """Apply migrations, then serve the API (and, unless --no-worker, a worker beside it)."""
    from batchpress.cli.serve import run_service

    _configure_logging()
    run_service(get_settings(), with_worker=not no_worker)


@app.command()
def worker(
    concurrency: int = typer.Option(0, help="Worker processes; 0 means BATCHPRESS_WORKER_CONCURRENCY."),
) -> None:
    """Run a Celery worker with the project's reliability settings."""
    from batchpress.cli.serve import run_worker

    _configure_logging()
    run_worker(get_settings(), concurrency=concurrency or None)


@app.command("webhook-secret")
def webhook_secret() -> None:
    """Print the secret(s) webhook receivers verify signatures with (generated on first use)."""
    from batchpress.webhooks.signing import webhook_secrets

    typer.echo(webhook_secrets(get_settings()))


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from batchpress.db.migrate import upgrade

    _configure_logging()
    settings = get_settings()
    upgrade(settings)
    typer.echo("database is up to date")
