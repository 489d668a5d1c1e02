"""The status answer cache's pure parts: which Accept-Encoding headers admit gzip, and its byte bound."""

from __future__ import annotations

import gzip
import random

import pytest

from batchpress.api.status_cache import Answer, AnswerCache, accepts_gzip


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZIP", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, *", False),
        ("*;q=0", False),
        ("deflate, br", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_an_answer_keeps_both_encodings_of_the_same_bytes() -> None:
    body = b'{"products": [' + b'{"url": "https://cdn.example.com/a.jpg"},' * 500 + b"{}]}"
    answer = Answer.of(body)
    assert gzip.decompress(answer.gzipped) == body
    assert len(answer.gzipped) * 10 < len(body)
    assert answer.size == len(body) + len(answer.gzipped)


def test_the_cache_stays_under_its_byte_bound_dropping_the_oldest() -> None:
    answers = [Answer.of(bytes([n]) * 1000) for n in range(10)]
    cache = AnswerCache(max_bytes=answers[0].size * 4, ttl_seconds=60)
    for n, answer in enumerate(answers):
        cache.put(f"k{n}", answer)
    assert [cache.get(f"k{n}") is not None for n in range(10)] == [False] * 6 + [True] * 4


def test_an_expired_answer_is_gone() -> None:
    cache = AnswerCache(ttl_seconds=0)
    cache.put("k", Answer.of(b"{}"))
    assert cache.get("k") is None


def test_large_answers_are_gzipped_too_whether_they_compress_well_or_not() -> None:
    rng = random.Random(7)
    tokens = b'{"urls": [' + b",".join(b'"%s"' % rng.randbytes(1000).hex().encode() for _ in range(200)) + b"]}"
    names = b'{"names": [' + b",".join(b'"Product %d"' % n for n in range(20_000)) + b"]}"
    for body in (tokens, names):
        answer = Answer.of(body)
        assert gzip.decompress(answer.gzipped) == body
        assert len(answer.gzipped) < len(body) * (0.6 if body is tokens else 0.2)
