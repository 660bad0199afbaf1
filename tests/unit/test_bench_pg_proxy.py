"""The benchmark's Postgres round-trip count: message framing on the wire, read correctly."""

from __future__ import annotations

from backend.devtools.bench.pg_proxy import _count_messages


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + (4 + len(payload)).to_bytes(4, "big") + payload


def startup() -> bytes:
    body = (196608).to_bytes(4, "big") + b"user\x00postgres\x00\x00"
    return (4 + len(body)).to_bytes(4, "big") + body


def ssl_request() -> bytes:
    return (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def test_startup_messages_are_skipped_and_queries_and_syncs_are_counted() -> None:
    stream = ssl_request() + startup() + message(b"Q", b"select 1\x00")
    stream += message(b"P", b"\x00select 2\x00\x00\x00") + message(b"B", b"\x00" * 8)
    stream += message(b"E", b"\x00\x00\x00\x00\x00") + message(b"S")
    rest, started, counted = _count_messages(stream, False)
    assert (rest, started, counted) == (b"", True, 2)


def test_a_message_split_across_reads_is_counted_once_it_is_complete() -> None:
    whole = message(b"Q", b"select 1\x00")
    rest, started, counted = _count_messages(whole[:3], True)
    assert counted == 0
    rest, started, counted = _count_messages(rest + whole[3:], started)
    assert (rest, counted) == (b"", 1)
