"""The SSE splitter: the same events whatever the chunking, and a bounded event size."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiwallet.engine.sse import SSESplitter

SEPS = [b"\n\n", b"\r\n\r\n", b"\r\r"]
# event bodies: lines without blank-line boundaries inside
BODY = st.lists(
    st.sampled_from([b"data: x", b"event: delta", b'data: {"a":1}', b": ping", b"data:\r"]),
    min_size=1,
    max_size=4,
).map(lambda lines: b"\n".join(lines).replace(b"\r\n", b"\n").rstrip(b"\r"))


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.tuples(BODY, st.sampled_from(SEPS)), max_size=12),
    tail=st.sampled_from([b"", b"data: unfinished", b"data: half\r\n\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
)
def test_events_do_not_depend_on_how_the_bytes_were_cut(events, tail, cuts):
    stream = b"".join(body + sep for body, sep in events) + tail
    whole = list(SSESplitter().feed(stream))
    splitter = SSESplitter()
    pieces: list[bytes] = []
    edges = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    for a, b in itertools.pairwise(edges):
        pieces.extend(splitter.feed(stream[a:b]))
    assert pieces == whole
    assert b"".join(whole) + bytes(splitter._buf) == stream  # nothing lost, nothing re-encoded
    assert [e for e in whole] == [body + sep for body, sep in events][: len(whole)]


def test_an_event_over_the_limit_is_refused_even_when_it_arrives_a_byte_at_a_time():
    splitter = SSESplitter(max_event_bytes=1000)
    with pytest.raises(ValueError, match="size limit"):
        for _ in range(2000):
            list(splitter.feed(b"x"))
    assert len(splitter._buf) == 1001  # refused as soon as it passed the limit


def test_a_boundary_cut_across_chunks_is_found():
    splitter = SSESplitter()
    assert list(splitter.feed(b"data: a\r\n")) == []
    assert list(splitter.feed(b"\r")) == []
    assert list(splitter.feed(b"\ndata: b\n")) == [b"data: a\r\n\r\n"]
    assert list(splitter.feed(b"\n")) == [b"data: b\n\n"]
