"""Reusing outputs: by recipe (the source's bytes and the options that change the output), and by what the origin
says of a URL since the last download (``ETag``, ``Last-Modified``), so a catalogue sent again costs almost nothing.

An output is stored under a key that names its recipe and its own bytes (``content_key``): the same source and
options give the same key in every request, and two different outputs can never share one. The ``stored_output``
row of a recipe is written by the first worker to record it; a worker that compressed the same recipe at the same
moment drops its object (if its bytes differed) and lists the winner's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.metadata
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from batchpress.db.base import utcnow
from batchpress.db.upsert import upsert
from batchpress.models import Reuse, SourceValidator, StoredOutput
from batchpress.processing.leases import ClaimedImage
from batchpress.processing.results import Compressed, Outcome, Seen

# Bumped whenever our own code changes what the encoders write for the same input and options.
ENCODER_REVISION = "1"
# Libraries whose version changes output bytes: a new one compresses again rather than reuse an older output.
_ENCODER_LIBRARIES = ("pillow", "pyjpegli", "mozjpeg-lossless-optimization", "pyoxipng")


@functools.cache
def encoders() -> str:
    versions = []
    for name in _ENCODER_LIBRARIES:
        try:
            versions.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name}=none")
    return ";".join([ENCODER_REVISION, *versions])


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def recipe_of(source_hash: str, image: ClaimedImage) -> str:
    """Everything that decides the output's bytes: the source, the request's options and the encoders."""
    options = f"q={image.quality};f={image.output_format};d={image.max_dimension};e={image.effort}"
    return sha256(f"{source_hash};{options};{encoders()}")


def content_key(recipe: str, output: bytes, extension: str) -> str:
    """``c/<recipe>-<output>.<ext>``: stable for a recipe, and never the same for two different outputs."""
    return f"{key_prefix(recipe)}{etag_of(output)}.{extension}"


def key_prefix(recipe: str) -> str:
    """What every key of ``recipe``'s outputs starts with."""
    return f"c/{recipe[:32]}-"


_CONTENT_KEY = re.compile(r"c/(?P<name>[0-9a-f]{32}-(?P<etag>[0-9a-f]{16}))\.[a-z0-9]+")
_PREVIEW_KEY = re.compile(r"p/[0-9a-f]{32}-(?P<etag>[0-9a-f]{16}-(?:before|after))\.webp")


def etag_in(key: str) -> str | None:
    """The output hash a content key names (``content_key``), with the side for a preview's key (``preview_keys``),
    or None for any other key: none of them ever changes."""
    match = _CONTENT_KEY.fullmatch(key) or _PREVIEW_KEY.fullmatch(key)
    return match["etag"] if match else None


def preview_keys(output_key: str) -> tuple[str, str] | None:
    """Where the previews of the input and of the output behind a content key are kept: ``p/<name>-before.webp``
    and ``p/<name>-after.webp``. Derived, not stored, so whatever deletes an output finds its previews."""
    match = _CONTENT_KEY.fullmatch(output_key)
    if match is None:
        return None
    return f"p/{match['name']}-before.webp", f"p/{match['name']}-after.webp"


def etag_of(output: bytes) -> str:
    return sha256(output)[:16]


def scope_of(image: ClaimedImage) -> str:
    """Validators are kept per API key: a 304 proves only that this key downloaded those bytes before."""
    return image.api_key_id or ""


@dataclass(frozen=True, slots=True)
class Found:
    """A stored output a recipe can reuse."""

    output_key: str
    output_bytes: int
    previews: bool = False


@dataclass(frozen=True, slots=True)
class Conditional:
    """What to send with a URL's download, and what a 304 reuses."""

    headers: dict[str, str]
    source_hash: str
    source_bytes: int
    found: Found


def find_outputs(session: Session, recipes: Sequence[str]) -> dict[str, Found]:
    if not recipes:
        return {}
    rows = session.execute(
        select(StoredOutput.recipe, StoredOutput.output_key, StoredOutput.output_bytes, StoredOutput.previews).where(
            StoredOutput.recipe.in_(list(recipes))
        )
    )
    return {r.recipe: Found(r.output_key, r.output_bytes, r.previews) for r in rows}


def conditions_for(session: Session, claimed: Sequence[ClaimedImage]) -> dict[int, Conditional]:
    """Per claimed image id, the validators to send, for images whose URL this key downloaded before and whose
    recipe from those bytes has a stored output: only then can a 304 be used. Two queries a chunk."""
    keys: dict[tuple[str, str], list[ClaimedImage]] = {}
    for c in claimed:
        keys.setdefault((scope_of(c), sha256(c.input_url)), []).append(c)
    rows = session.execute(
        select(SourceValidator).where(tuple_(SourceValidator.scope, SourceValidator.url_hash).in_(list(keys)))
    ).scalars()
    known = {
        c.id: (row, recipe_of(row.source_hash, c))
        for row in rows
        if row.etag or row.last_modified
        for c in keys.get((row.scope, row.url_hash), ())
    }
    found = find_outputs(session, [recipe for _, recipe in known.values()])
    conditions = {}
    for image_id, (row, recipe) in known.items():
        if recipe not in found:
            continue
        headers = {"If-None-Match": row.etag} if row.etag else {}
        if row.last_modified:
            headers["If-Modified-Since"] = row.last_modified
        conditions[image_id] = Conditional(headers, row.source_hash, row.source_bytes, found[recipe])
    return conditions


def keep_outputs(
    session: Session, outcomes: list[tuple[int, Outcome]], *, url_for: Callable[[str], str]
) -> tuple[list[tuple[int, Outcome]], list[str]]:
    """Record the recipes of freshly stored outputs and the validators of full downloads, in the caller's
    transaction. Returns the outcomes to record, where an output that lost its recipe to another writer is replaced
    by the winner's, and the keys of the objects that lost (to delete once this commits)."""
    outcomes = _still_stored(session, outcomes)
    fresh = [o for _, o in outcomes if isinstance(o, Compressed) and o.recipe and not o.reused and o.output_key]
    now = utcnow()
    if fresh:
        rows = [
            {
                "recipe": o.recipe,
                "output_key": o.output_key,
                "output_bytes": o.output_bytes,
                "previews": o.previews,
                "created_at": now,
            }
            for o in sorted(fresh, key=lambda o: o.recipe or "")  # one order for every writer: no deadlock
        ]
        session.execute(upsert(session, StoredOutput).on_conflict_do_nothing(), rows)
    _keep_validators(session, outcomes, now)
    if not fresh:
        return outcomes, []
    winners = find_outputs(session, [o.recipe for o in fresh if o.recipe])
    dropped: list[str] = []
    kept: list[tuple[int, Outcome]] = []
    for image_id, outcome in outcomes:
        won = winners.get(outcome.recipe or "") if isinstance(outcome, Compressed) and not outcome.reused else None
        if isinstance(outcome, Compressed) and won is not None and won.output_key != outcome.output_key:
            if outcome.output_key:
                dropped += [outcome.output_key, *(preview_keys(outcome.output_key) or ())]
            outcome = dataclasses.replace(
                outcome,
                output_key=won.output_key,
                output_url=url_for(won.output_key),
                output_bytes=won.output_bytes,
                previews=won.previews,
                reused=Reuse.CONTENT.value,
            )
        kept.append((image_id, outcome))
    return kept, dropped


def _still_stored(session: Session, outcomes: list[tuple[int, Outcome]]) -> list[tuple[int, Outcome]]:
    """Leave out reuses of outputs deleted since they were looked up (docs/reuse.md): not recorded, their leases
    lapse and they are compressed again. The rows read are share-locked until this commits, so a deletion waits and
    then sees the images that list them."""
    reusing = {o.output_key for _, o in outcomes if isinstance(o, Compressed) and o.reused and o.output_key}
    if not reusing:
        return outcomes
    alive = set(
        session.scalars(
            select(StoredOutput.output_key).where(StoredOutput.output_key.in_(reusing)).with_for_update(read=True)
        )
    )
    if alive == reusing:
        return outcomes
    return [(i, o) for i, o in outcomes if not (isinstance(o, Compressed) and o.reused and o.output_key not in alive)]


def _keep_validators(session: Session, outcomes: list[tuple[int, Outcome]], now: dt.datetime) -> None:
    seen: dict[tuple[str, str], Seen] = {}
    for _, outcome in outcomes:
        if isinstance(outcome, Compressed) and outcome.seen is not None:
            seen[(outcome.seen.scope, sha256(outcome.seen.url))] = outcome.seen
    if not seen:
        return
    rows = [
        {
            "scope": scope,
            "url_hash": url_hash,
            "etag": s.etag,
            "last_modified": s.last_modified,
            "source_hash": s.source_hash,
            "source_bytes": s.source_bytes,
            "updated_at": now,
        }
        for (scope, url_hash), s in sorted(seen.items())  # one order for every writer: no deadlock between two
    ]
    statement = upsert(session, SourceValidator)
    excluded = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["scope", "url_hash"],
            set_={
                "etag": excluded.etag,
                "last_modified": excluded.last_modified,
                "source_hash": excluded.source_hash,
                "source_bytes": excluded.source_bytes,
                "updated_at": excluded.updated_at,
            },
        ),
        rows,
    )
