from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from batchpress.config import Settings

if TYPE_CHECKING:
    from batchpress.cli.client import Client

DEFAULT_URL = "http://127.0.0.1:8000"

# No Rich tracebacks: with locals shown they print secrets, and an expected failure is one line (cli/startup.py).
app = typer.Typer(
    help="batchpress: bulk product-image compression.", no_args_is_help=True, pretty_exceptions_enable=False
)


def _start(run: Callable[[Settings], None]) -> None:
    """Load the settings, set up logging, run; a start-up failure becomes one line on stderr and its exit code."""
    from batchpress.cli.startup import StartupError, import_error, load_settings, report
    from batchpress.logs import configure_logging

    try:
        settings = load_settings()
        # Text or JSON lines (BATCHPRESS_LOG_FORMAT) on stderr, for this process and for uvicorn and Celery in it.
        configure_logging(settings.log_format)
        run(settings)
    except StartupError as exc:
        report(exc)
        raise typer.Exit(exc.code) from None
    except ImportError as exc:
        error = import_error(exc)
        report(error)
        raise typer.Exit(error.code) from None


@app.command()
def serve(
    no_worker: bool = typer.Option(False, "--no-worker", help="Run the API only; workers run elsewhere."),
) -> None:
    """Apply migrations, then serve the API (and, unless --no-worker, a worker beside it)."""

    def run(settings: Settings) -> None:
        from batchpress.cli.serve import run_service

        run_service(settings, with_worker=not no_worker)

    _start(run)


@app.command()
def worker(
    concurrency: int = typer.Option(0, help="Worker processes; 0 means BATCHPRESS_WORKER_CONCURRENCY."),
) -> None:
    """Run a Celery worker with the project's reliability settings."""

    def run(settings: Settings) -> None:
        from batchpress.cli.serve import run_worker

        run_worker(settings, concurrency=concurrency or None)

    _start(run)


@app.command("webhook-secret")
def webhook_secret() -> None:
    """Print the secret(s) webhook receivers verify signatures with (generated on first use)."""
    from batchpress.webhooks.signing import webhook_secrets

    _start(lambda settings: typer.echo(webhook_secrets(settings)))


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""

    def run(settings: Settings) -> None:
        from batchpress.cli.serve import migrate_database

        migrate_database(settings)
        typer.echo("database is up to date")

    _start(run)


@app.command()
def demo(
    port: Annotated[
        int, typer.Option(envvar="BATCHPRESS_PORT", show_envvar=True, min=1, max=65535, help="The API's port.")
    ] = 8000,
) -> None:
    """Try it without the internet: serve a few sample photos locally, run the service on temporary data, upload a
    CSV of them and print the page to watch it on; Ctrl-C stops it all."""
    from batchpress.cli.demo import run_demo

    run_demo(port, _start)


# Client commands: they talk to a batchpress server over HTTP and need no settings, database or broker here.

UrlOption = Annotated[
    str, typer.Option("--url", envvar="BATCHPRESS_URL", help="The batchpress server.", show_envvar=True)
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="BATCHPRESS_API_KEY",
        help="One of the server's BATCHPRESS_API_KEYS, if it has any.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a summary.")]


@contextmanager
def _api_call() -> Iterator[None]:
    """Any failure to talk to the API: its message on stderr, exit status 2."""
    from batchpress.cli.client import ApiProblem

    try:
        yield
    except ApiProblem as problem:
        for line in problem.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


@app.command()
def submit(
    csv_file: Annotated[
        Path, typer.Argument(metavar="FILE.csv", exists=True, dir_okay=False, readable=True, help="The product CSV.")
    ],
    webhook: Annotated[str | None, typer.Option(help="URL to POST a signed event to when it finishes.")] = None,
    quality: Annotated[int | None, typer.Option(help="Encoder quality, e.g. 50 (the server checks the range).")] = None,
    output_format: Annotated[str | None, typer.Option(help="Output format, e.g. jpeg, webp (server default).")] = None,
    max_dimension: Annotated[int | None, typer.Option(help="Shrink the longer side to at most N pixels.")] = None,
    effort: Annotated[
        str | None, typer.Option(help="max: smallest files (server default); fast: quicker encoders, larger files.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until it finishes; exit 1 if images failed.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Upload a CSV of product image URLs and print the request id."""
    from batchpress.cli.client import Client

    options = {
        "webhook_url": webhook,
        "quality": quality,
        "output_format": output_format,
        "max_dimension": max_dimension,
        "effort": effort,
    }
    fields = {name: str(value) for name, value in options.items() if value is not None}
    with _api_call(), Client(url, api_key) as client:
        with csv_file.open("rb") as fh:
            accepted = client.upload(fh, csv_file.name, fields)
        request_id = str(accepted["request_id"])
        if not wait:
            typer.echo(json.dumps(accepted, indent=2) if as_json else request_id)
            return
        if not as_json:
            typer.echo(request_id)
        _wait_for(client, request_id, as_json)


def _wait_for(client: Client, request_id: str, as_json: bool) -> NoReturn:
    """``--wait``: progress on stderr until the request finishes, then its summary (or JSON); exit 1 if images
    failed, 130 when interrupted (the request goes on)."""
    from rich.console import Console

    from batchpress.cli.display import exit_code, follow, summary_lines

    try:
        status = follow(client, request_id, Console(stderr=True))
    except KeyboardInterrupt:
        typer.echo(f"stopped waiting; the request goes on: batchpress status {request_id}", err=True)
        raise typer.Exit(130) from None
    typer.echo(json.dumps(status, indent=2) if as_json else "\n".join(summary_lines(status)))
    raise typer.Exit(exit_code(status))


@app.command()
def status(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request id submit printed.")],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a request's status; exit 1 if it finished with failed images."""
    from batchpress.cli.client import Client
    from batchpress.cli.display import exit_code, summary_lines

    with _api_call(), Client(url, api_key) as client:
        result = client.status(request_id)
    typer.echo(json.dumps(result, indent=2) if as_json else "\n".join(summary_lines(result)))
    raise typer.Exit(exit_code(result))


@app.command()
def download(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request id submit printed.")],
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="Where to save it; - for stdout.", show_default="batchpress-ID.csv"),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Save a finished request's output CSV (input columns plus the compressed images' URLs)."""
    from batchpress.cli.client import ApiProblem, Client

    target = None if output == "-" else Path(output or f"batchpress-{request_id}.csv")
    with _api_call(), Client(url, api_key) as client:
        try:
            size = client.download(request_id, target)
        except ApiProblem as problem:
            if problem.code != "not_finished":
                raise
            typer.echo(
                f"request {request_id} is not finished yet; try later (batchpress status {request_id})", err=True
            )
            raise typer.Exit(1) from None
    if target is not None:
        typer.echo(f"saved {target} ({size} bytes)", err=True)


IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The request id submit printed.")]
DEFAULT_PAGE, ALL_PAGE = 20, 100


@app.command("list")
def list_requests(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only requests in this status: pending, processing, completed, completed_with_errors, "
            "failed or cancelled."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Requests a page (the server takes up to 100).",
            show_default=f"{DEFAULT_PAGE}; {ALL_PAGE} with --all",
        ),
    ] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow the pages down to the oldest request.")] = False,
    cursor: Annotated[str | None, typer.Option(help="Start at the next_cursor an earlier page gave.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """List requests, newest first (with API keys on, those of your key)."""
    from batchpress.cli.client import Client
    from batchpress.cli.display import list_lines

    size = limit or (ALL_PAGE if all_pages else DEFAULT_PAGE)
    with _api_call(), Client(url, api_key) as client:
        page = client.list_requests(status=status, limit=size, cursor=cursor)
        found = list(page["requests"])
        while all_pages and page.get("next_cursor"):
            page = client.list_requests(status=status, limit=size, cursor=page["next_cursor"])
            found += page["requests"]
    more = page.get("next_cursor")
    if as_json:
        typer.echo(json.dumps({"requests": found, "next_cursor": more}, indent=2))
        return
    typer.echo("\n".join(list_lines(found)) if found else f"no {status} requests" if status else "no requests")
    if more:
        typer.echo(f"more: --all lists them all, --cursor {more} the next page", err=True)


@app.command()
def cancel(
    request_id: IdArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None
) -> None:
    """Cancel an open request: images not started are not processed, those in flight finish first."""
    from batchpress.cli.client import Client
    from batchpress.cli.display import cancel_line

    with _api_call(), Client(url, api_key) as client:
        summary = client.cancel(request_id)
    typer.echo(json.dumps(summary, indent=2) if as_json else cancel_line(summary))


@app.command()
def retry(
    request_id: IdArgument,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until it finishes again; exit 1 if images failed.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Queue a finished request's failed images again."""
    from batchpress.cli.client import Client
    from batchpress.cli.display import retry_line

    with _api_call(), Client(url, api_key) as client:
        summary = client.retry(request_id)
        if not wait:
            typer.echo(json.dumps(summary, indent=2) if as_json else retry_line(summary))
            return
        if not as_json:
            typer.echo(retry_line(summary))
        _wait_for(client, str(summary["request_id"]), as_json)


@app.command()
def delete(
    request_id: IdArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first (needed without a terminal).")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a finished request: its status, webhook log, output CSV and the images no other request lists."""
    from batchpress.cli.client import TERMINAL, Client
    from batchpress.cli.display import delete_question

    if not yes and not sys.stdin.isatty():
        typer.echo(f"error: not deleting {request_id} unasked: there is no terminal to ask on; pass --yes", err=True)
        raise typer.Exit(2)
    with _api_call(), Client(url, api_key) as client:
        if not yes:
            status = client.status(request_id, limit=1)
            # An open request is refused by the server (cancel it first): no point asking.
            if status["status"] in TERMINAL:
                # Asked on stderr and read from stdin, so stdout carries only the outcome.
                typer.echo(f"{delete_question(status)} [y/N] ", err=True, nl=False)
                if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                    typer.echo("not deleted", err=True)
                    raise typer.Exit(1)
        client.delete(request_id)
    typer.echo(f"deleted {request_id}")


@app.command()
def doctor() -> None:
    """Check this machine's setup: codecs, settings, database, broker, storage, outbound policy."""
    from batchpress.cli.doctor import run_checks

    raise typer.Exit(run_checks())
