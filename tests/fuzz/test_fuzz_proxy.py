"""Malformed bodies and headers against the proxied OpenAI and Anthropic routes.

Every request is written byte for byte on its own connection (raw_request), with a valid app
key unless the case is about the key. For each answer: no 5xx from the engine itself (an
``upstream_*`` 5xx only when the fake upstream was really called), the error body in the wire
shape of the route's API (OpenAI ``{"error": {...}}``, Anthropic ``{"type": "error", ...}``,
whatever ``anthropic-version`` says) with a stable code that is also in
``x-aiwallet-error-code``, and a refused request leaves the ledger (``count(*)``,
``sum(amount_nano)``) and the open reservations as they were. The engine answers /healthz
afterwards. (A request repeating a header HTTP allows once, such as
Content-Type or Host, is refused by aiohttp's parser with its own plain-text 400 before the
engine sees it; that is checked as such.)

Cases, short mode: 5 routes × 300 bodies + 300 header cases + 150 well-addressed requests of
wrong shapes = 1,950. ``AIWALLET_FUZZ_LONG=1``: 5 × 3,000 + 3,000 + 1,500 = 19,500.
"""

from __future__ import annotations

import json

import httpx
import pytest
from aiohttp.http_parser import SINGLETON_HEADERS
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aiwallet.engine.endpoints import ENDPOINTS
from fuzz.conftest import RawResponse, assert_wire_error, ledger_totals, raw_request, scaled

ROUTES = sorted(ENDPOINTS)
ANTHROPIC_VERSION = (b"anthropic-version", b"2023-06-01")
JSON_TYPE = (b"Content-Type", b"application/json")
FIELDS = [
    "model",
    "messages",
    "input",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "stream",
    "stream_options",
    "system",
    "tools",
    "cache_control",
    "temperature",
]
REAL_MODELS = {
    "/v1/chat/completions": "gpt-4o-mini",
    "/v1/responses": "gpt-4o-mini",
    "/v1/embeddings": "text-embedding-3-small",
    "/v1/messages": "claude-sonnet-4-5",
    "/v1/messages/count_tokens": "claude-sonnet-4-5",
}


def _settings(short: int, long: int):
    return settings(
        max_examples=scaled(short, long),
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )


# -- strategies ------------------------------------------------------------------------------
big_ints = st.one_of(
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**64),
    # json.dumps cannot write more than 4300 digits: longer numbers are the "numbers" kind's
    st.integers(min_value=10, max_value=4000).map(lambda digits: 10**digits),
    st.integers(min_value=10, max_value=4000).map(lambda digits: -(10**digits)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    big_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# A model no catalog has (or not a string at all): such a request can never go upstream.
unknown_model = st.one_of(
    st.text(max_size=20).map(lambda t: "zz-no-such-model-" + t),
    st.just(""),
    json_values.filter(lambda v: not isinstance(v, str)),
)


@st.composite
def refusable_objects(draw) -> dict:
    """Objects of the right fields with wrong values, and a model that is refused."""
    body = draw(st.dictionaries(st.sampled_from(FIELDS[1:]), json_values, max_size=6))
    body.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    model = draw(st.one_of(st.just(None), unknown_model))
    if model is not None:
        body["model"] = model
    else:
        body.pop("model", None)
    return body


def _dumps(value, special_numbers: bool) -> bytes:
    text = json.dumps(value, allow_nan=special_numbers)
    return text.encode()


@st.composite
def malformed_bodies(draw) -> bytes:
    kind = draw(
        st.sampled_from(
            ["shape", "not-object", "bytes", "bad-utf8", "truncated", "numbers", "deep", "empty"]
        )
    )
    if kind == "shape":
        return _dumps(draw(refusable_objects()), False)
    if kind == "not-object":
        return _dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))), False)
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "bad-utf8":
        good = _dumps(draw(refusable_objects()), False)
        at = draw(st.integers(0, len(good)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
        return good[:at] + junk + good[at:]
    if kind == "truncated":
        good = _dumps({"model": REAL_MODELS[ROUTES[0]], "messages": [], "max_tokens": 5}, False)
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "numbers":
        number = draw(
            st.one_of(
                st.integers(min_value=1, max_value=6000).map(lambda d: "9" * d),
                st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-0", "1.5e-400"]),
            )
        )
        field = draw(st.sampled_from(FIELDS))
        model = json.dumps(draw(unknown_model)) if field != "model" else number
        return f'{{"model": {model}, "{field}": {number}}}'.encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=200_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        tail = closer * depth if draw(st.booleans()) else b""
        return opener * depth + (b"1" if opener != b"[" else b"") + tail
    return b""


content_types = st.one_of(
    st.just(b"application/json"),
    st.sampled_from(
        [
            b"application/json; charset=utf-8",
            b"application/json; charset=latin-1",
            b"application/json; charset=no-such-charset",
            b"APPLICATION/JSON",
            b"application/jsonl",
            b"text/plain",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=x",
            b"",
            b"\xff\xfe",
        ]
    ),
)


# -- checks ----------------------------------------------------------------------------------
def _api_of(path: str, headers: list[tuple[bytes, bytes]]) -> str:
    """A proxied route's errors are in its own API's shape, whatever the headers say."""
    return ENDPOINTS[path].api.value


class Watch:
    """The engine's observable state before a request, and the checks after it."""

    def __init__(self, rig) -> None:
        self.rig = rig
        self.cases = 0
        self.codes: dict[str, int] = {}

    def send(self, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
        rig = self.rig
        before = ledger_totals(rig)
        served = len(rig.fake.served)
        resp = raw_request(rig.engine.port, "POST", path, headers, body)
        self.cases += 1
        if resp.status == 200:
            return resp
        names = [name.lower().decode("latin-1") for name, _ in headers]
        if any(names.count(n) > 1 for n in SINGLETON_HEADERS):
            # aiohttp's parser refuses the request before the engine sees it (plain text)
            assert resp.status == 400 and b"Duplicate" in resp.body, resp
            assert ledger_totals(rig) == before and len(rig.fake.served) == served
            self.codes["duplicate-header"] = self.codes.get("duplicate-header", 0) + 1
            return resp
        reached_upstream = len(rig.fake.served) > served
        if reached_upstream and 400 <= resp.status < 500:
            # The provider refused the body itself (as the real APIs answer 400 for a wrong
            # shape): relayed in its own words, nothing billed, nothing left reserved.
            assert rig.fake.served[-1].status == resp.status, (resp.status, resp.body)
            assert "error" in resp.json(), resp.body
            self.codes["provider-4xx"] = self.codes.get("provider-4xx", 0) + 1
            assert ledger_totals(rig) == before, (path, body[:200], resp.body)
            assert rig.wallet.budgets.open_reservations() == []
            return resp
        code = assert_wire_error(_api_of(path, headers), resp)
        self.codes[code] = self.codes.get(code, 0) + 1
        if resp.status >= 500:
            assert code.startswith("upstream_") and reached_upstream, (code, resp.body)
        assert ledger_totals(rig) == before, (path, body[:200], resp.body)
        assert rig.wallet.budgets.open_reservations() == []
        return resp

    def healthy(self) -> None:
        assert httpx.get(self.rig.url + "/healthz", timeout=5).json() == {"ok": True}


# -- tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ROUTES)
def test_malformed_bodies(make_engine, path):
    rig = make_engine(consent_timeout_s=0.0)
    key = rig.app("fuzz", budget="2/day")
    watch = Watch(rig)

    @_settings(300, 3000)
    @given(body=malformed_bodies(), ctype=content_types, anthropic_style=st.booleans())
    def run(body, ctype, anthropic_style):
        if anthropic_style:
            headers = [(b"x-api-key", key.encode()), ANTHROPIC_VERSION]
        else:
            headers = [(b"Authorization", b"Bearer " + key.encode())]
        resp = watch.send(path, [(b"Content-Type", ctype), *headers], body)
        assert resp.status != 200, (body[:200], resp.body[:200])  # none of these is servable

    run()
    watch.healthy()
    assert rig.fake.served == []
    assert watch.cases >= scaled(300, 3000)
    assert {"invalid_request", "unsupported_media_type"} <= set(watch.codes), watch.codes


bad_auth_values = st.one_of(
    st.sampled_from(
        [
            b"",
            b"Bearer",
            b"Bearer ",
            b"bearer    ",
            b"Basic dXNlcjpwYXNz",
            b"Bearer aw_app_",
            b"Bearer aw_app_short",
            b"Bearer aw_sess_",
            b"Bearer aw_sess_.",
            b"Bearer aw_sess_e30.e30",
            b"Bearer sk-proj-0000000000000000",
        ]
    ),
    st.binary(min_size=1, max_size=60).map(
        lambda b: b"Bearer aw_app_" + bytes(c for c in b if c >= 0x20 and c != 0x7F) + b"x" * 17
    ),
    st.binary(min_size=1, max_size=60).map(
        lambda b: b"Bearer aw_sess_" + bytes(c for c in b if c >= 0x20 and c != 0x7F)
    ),
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
        max_size=80,
    ).map(lambda t: t.encode()),
    st.integers(1000, 4000).map(lambda n: b"Bearer aw_app_" + b"A" * n),
)
odd_headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                b"anthropic-version",
                b"x-api-key",
                b"Authorization",
                b"Content-Type",
                b"Origin",
                b"X-Forwarded-For",
                b"x-fake-script",
                b"Accept-Encoding",
                b"Transfer-Encoding-X",
                b"X-Odd_Name.1~",
            ]
        ),
        st.binary(max_size=40).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F)),
    ),
    max_size=4,
)


def test_odd_headers_and_bad_keys(make_engine):
    rig = make_engine(consent_timeout_s=0.0)
    key = rig.app("fuzz", budget="2/day")
    watch = Watch(rig)

    @_settings(300, 3000)
    @given(
        path=st.sampled_from(ROUTES),
        auth=st.one_of(st.none(), bad_auth_values),
        extra=odd_headers,
        keep_good_key=st.booleans(),
        body=st.one_of(st.just(b"{}"), st.builds(lambda b: _dumps(b, False), refusable_objects())),
    )
    def run(path, auth, extra, keep_good_key, body):
        headers = [JSON_TYPE]
        if keep_good_key:  # a valid key, then duplicated / contradicting headers
            headers.append((b"Authorization", b"Bearer " + key.encode()))
        if auth is not None:
            headers.append((b"Authorization", auth))
        headers += extra
        resp = watch.send(path, headers, body)
        assert resp.status != 200, (headers, body[:200])

    run()
    watch.healthy()
    assert rig.fake.served == []
    # Without a wallet key, a body that would be refused is refused before anyone is asked
    # (so these refusable bodies never reach consent_required); a foreign key in the
    # wallet's format is invalid_app_key.
    assert {"invalid_app_key", "invalid_request"} <= set(watch.codes), watch.codes


@st.composite
def wrong_shapes(draw, path: str) -> bytes:
    """A real model, so the request may be served: the rest of the body is fuzzed."""
    body = draw(st.dictionaries(st.sampled_from(FIELDS[1:]), json_values, max_size=5))
    body["model"] = REAL_MODELS[path]
    body.pop("stream", None)  # streams are the fault matrix's business
    if path == "/v1/messages":
        body["max_tokens"] = draw(st.one_of(st.integers(1, 64), json_values))
    return _dumps(body, False)


def test_wrong_shapes_with_a_real_model(make_engine):
    """These may reach the provider: an answer from the engine itself is never a 5xx, a
    refusal changes nothing, and a 5xx is only ever the fake upstream's own failure."""
    rig = make_engine(consent_timeout_s=0.0)
    key = rig.app("fuzz", budget="2/day")
    watch = Watch(rig)
    statuses: set[int] = set()

    @_settings(150, 1500)
    @given(data=st.data(), path=st.sampled_from(ROUTES))
    def run(data, path):
        body = data.draw(wrong_shapes(path))
        headers = [JSON_TYPE, (b"Authorization", b"Bearer " + key.encode())]
        if path.startswith("/v1/messages"):
            headers.append(ANTHROPIC_VERSION)
        statuses.add(watch.send(path, headers, body).status)

    run()
    # Both outcomes are reachable through this harness whatever hypothesis drew: a body the
    # provider serves, and one that it refuses in its own shape.
    ok = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    bad = {"model": "gpt-4o-mini", "messages": 5}
    for body in (ok, bad):
        statuses.add(
            watch.send(
                "/v1/chat/completions",
                [JSON_TYPE, (b"Authorization", b"Bearer " + key.encode())],
                _dumps(body, False),
            ).status
        )
    watch.healthy()
    assert 200 in statuses and any(400 <= s < 500 for s in statuses), statuses
    assert rig.wallet.budgets.open_reservations() == []
