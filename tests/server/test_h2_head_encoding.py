"""The invoker's request heads are HPACK-encoded with reused field encodings
(invoker/h2.py ``_PlainEncoder``): whatever the sequence of heads, and however the dynamic table
fills, evicts and resizes, a standard decoder must read back exactly the heads that were sent."""

from __future__ import annotations

import random

import hpack

from perdure.server.invoker.h2 import _PlainEncoder


def _head(rng: random.Random, n: int) -> list[tuple[str, str]]:
    head: list[tuple[str, str]] = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{9000 + rng.randrange(3)}"),
        (":path", f"/invoke/Svc{rng.randrange(40)}/handler"),
        ("content-type", "application/vnd.restate.invocation.v6"),
        ("accept", "application/vnd.restate.invocation.v6"),
        hpack.NeverIndexedHeaderTuple("x-restate-invocation-id", f"inv_{n:030d}"),
    ]
    if rng.random() < 0.3:  # a value the static table holds with an empty one
        head.append(hpack.NeverIndexedHeaderTuple("accept-charset", ""))
    if rng.random() < 0.5:  # a big value: evicts much of the dynamic table when indexed
        head.append(("x-custom", "v" * rng.randrange(1, 3000)))
    return head


def test_reused_encodings_decode_to_the_heads_sent() -> None:
    rng = random.Random(7)
    encoder, decoder = _PlainEncoder(), hpack.Decoder()
    for n in range(3000):
        if n % 500 == 499:  # the peer changes its table size: a size update goes first
            size = rng.choice([0, 256, 4096])
            encoder.header_table_size = size
            decoder.max_allowed_table_size = 4096
        head = _head(rng, n)
        decoded = decoder.decode(encoder.encode(head), raw=False)
        assert [(k, v) for k, v in decoded] == [(k, v) for k, v in head], n
