"""`aiwallet requests`: the request log on the command line, over a seeded wallet."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from aiwallet.cli import main
from aiwallet.paths import resolve_data_dir
from aiwallet.service import Wallet
from aiwallet.store.records import RequestRecord

NOW = datetime.now(UTC).replace(microsecond=0)
HEADER = ["TIME", "APP", "MODEL", "STATUS", "TOKENS IN/OUT", "COST", "LATENCY"]


def cli(capsys, data_dir, *args):
    """In-process run; returns (exit code, stdout, stderr)."""
    try:
        main(["--data-dir", str(data_dir), "requests", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def ids(capsys, data_dir, *args):
    """The request ids `--json` lists, in its order."""
    code, out, err = cli(capsys, data_dir, "--json", *args)
    assert code == 0, err
    return [r["id"] for r in json.loads(out)]


@pytest.fixture
def empty(tmp_path):
    return tmp_path / "wallet"


@pytest.fixture
def seeded(tmp_path):
    """Two apps and six requests over forty days, each a different kind of outcome."""
    data_dir = tmp_path / "wallet"
    wallet = Wallet.open(resolve_data_dir(data_dir))
    try:
        alpha = wallet.create_app("alpha", budget=None)[0].id
        beta = wallet.create_app("beta", budget=None)[0].id
        rows = [
            RequestRecord(
                id="r01",
                ts=NOW - timedelta(minutes=1),
                endpoint="/v1/chat/completions",
                status=200,
                app_id=alpha,
                model="gpt-4o-mini",
                provider="openai",
                input_tokens=100,
                cache_read_tokens=20,
                cache_write_tokens=5,
                output_tokens=1_040,
                cost_nano=123_450,
                token_source="provider",
                latency_ms=1_321,
                stream=True,
            ),
            RequestRecord(
                id="r02",
                ts=NOW - timedelta(hours=2),
                endpoint="/v1/messages",
                status=402,
                app_id=beta,
                model="claude-sonnet-4-5",
                error_code="budget_exceeded",
            ),
            RequestRecord(  # cut off on the way: 200, billed from what was relayed
                id="r03",
                ts=NOW - timedelta(hours=3),
                endpoint="/v1/messages",
                status=200,
                app_id=alpha,
                model="claude-sonnet-4-5",
                provider="anthropic",
                input_tokens=2_000,
                output_tokens=300,
                cost_nano=1_500_000_000,
                token_source="estimated",
                latency_ms=80,
                error_code="upstream_unavailable",
                stream=True,
            ),
            RequestRecord(
                id="r04",
                ts=NOW - timedelta(days=2),
                endpoint="/v1/chat/completions",
                status=429,
                app_id=beta,
                model="gpt-4o-mini",
                error_code="rate_limited",
            ),
            RequestRecord(
                id="r05",
                ts=NOW - timedelta(days=10),
                endpoint="/v1/embeddings",
                status=200,
                app_id=alpha,
                model="gpt-4o-mini",
                provider="openai",
                input_tokens=7,
                cost_nano=1,
                token_source="provider",
                latency_ms=12,
            ),
            RequestRecord(
                id="r06",
                ts=NOW - timedelta(days=40),
                endpoint="/v1/chat/completions",
                status=502,
                app_id=beta,
                model="gpt-4o-mini",
                provider="openai",
                error_code="upstream_unavailable",
            ),
        ]
        for row in rows:
            wallet.requests.record(row)
    finally:
        wallet.close()
    return data_dir


def table(out):
    """The table's header and rows as lists of cells (columns are 2+ spaces apart)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    split = [[c.strip() for c in ln.split("  ") if c.strip()] for ln in lines]
    return split[0], split[1:]


def local(ts):
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_table_lists_every_request_newest_first(capsys, seeded):
    code, out, err = cli(capsys, seeded)
    assert code == 0, err
    header, rows = table(out)
    assert header == HEADER
    assert rows == [
        [
            local(NOW - timedelta(minutes=1)),
            "alpha",
            "gpt-4o-mini",
            "200",
            "125 / 1,040",
            "$0.00012345",
            "1,321 ms",
        ],
        [
            local(NOW - timedelta(hours=2)),
            "beta",
            "claude-sonnet-4-5",
            "402 budget_exceeded",
            "0 / 0",
            "$0.00",
            "-",
        ],
        [
            local(NOW - timedelta(hours=3)),
            "alpha",
            "claude-sonnet-4-5",
            "200 upstream_unavailable",
            "2,000 / 300",
            "$1.50",
            "80 ms",
        ],
        [
            local(NOW - timedelta(days=2)),
            "beta",
            "gpt-4o-mini",
            "429 rate_limited",
            "0 / 0",
            "$0.00",
            "-",
        ],
        [
            local(NOW - timedelta(days=10)),
            "alpha",
            "gpt-4o-mini",
            "200",
            "7 / 0",
            "$0.000000001",
            "12 ms",
        ],
        [
            local(NOW - timedelta(days=40)),
            "beta",
            "gpt-4o-mini",
            "502 upstream_unavailable",
            "0 / 0",
            "$0.00",
            "-",
        ],
    ]
    assert "shown" not in out  # everything fits: no "more" footer


def test_json_shape_and_exact_costs(capsys, seeded):
    code, out, err = cli(capsys, seeded, "--json")
    assert code == 0, err
    items = json.loads(out)
    assert [i["id"] for i in items] == ["r01", "r02", "r03", "r04", "r05", "r06"]
    assert items[0] == {
        "id": "r01",
        "ts": (NOW - timedelta(minutes=1)).isoformat(),
        "app": "alpha",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": 200,
        "error_code": None,
        "input_tokens": 125,  # prompt with its cache reads and writes
        "output_tokens": 1_040,
        "cost_usd": "0.000123450",
        "token_source": "provider",
        "latency_ms": 1_321,
        "stream": True,
        "catalog_cost_usd": None,  # no provider-reported cost
        "cost_differs": False,
    }
    assert datetime.fromisoformat(items[2]["ts"]) == NOW - timedelta(hours=3)
    assert [i["cost_usd"] for i in items] == [
        "0.000123450",
        "0.000000000",
        "1.500000000",
        "0.000000000",
        "0.000000001",
        "0.000000000",
    ]
    assert items[1]["status"] == 402 and items[1]["error_code"] == "budget_exceeded"
    assert items[2]["token_source"] == "estimated" and items[2]["stream"] is True
    assert items[1]["latency_ms"] is None and items[1]["provider"] is None


def test_filter_by_app_and_unknown_app(capsys, seeded):
    assert ids(capsys, seeded, "--app", "alpha") == ["r01", "r03", "r05"]
    assert ids(capsys, seeded, "--app", "beta") == ["r02", "r04", "r06"]
    code, out, err = cli(capsys, seeded, "--app", "nobody")
    assert code == 1 and out == ""
    assert err.startswith("aiwallet: error:") and "'nobody'" in err
    assert len(err.strip().splitlines()) == 1


def test_filter_by_model(capsys, seeded):
    assert ids(capsys, seeded, "--model", "claude-sonnet-4-5") == ["r02", "r03"]
    assert ids(capsys, seeded, "--model", "gpt-4o-mini") == ["r01", "r04", "r05", "r06"]
    assert ids(capsys, seeded, "--model", "gpt-4o") == []  # exact names, not prefixes


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ok", ["r01", "r05"]),  # r03 is 200 but was cut off: not ok
        ("error", ["r02", "r03", "r04", "r06"]),
        ("budget_exceeded", ["r02"]),
        ("rate_limited", ["r04"]),
        ("upstream_unavailable", ["r03", "r06"]),
        ("wallet_paused", []),
        ("402", ["r02"]),
        ("200", ["r01", "r03", "r05"]),
        ("502", ["r06"]),
        ("404", []),
        ("OK", ["r01", "r05"]),
    ],
)
def test_filter_by_status(capsys, seeded, status, expected):
    assert ids(capsys, seeded, "--status", status) == expected


def test_http_status_is_picked_across_pages(capsys, seeded, monkeypatch):
    monkeypatch.setattr("aiwallet.cli_commands.requests._SCAN_PAGE", 2)
    assert ids(capsys, seeded, "--status", "200") == ["r01", "r03", "r05"]
    assert ids(capsys, seeded, "--status", "502") == ["r06"]  # on the last page
    assert ids(capsys, seeded, "--status", "200", "--limit", "2") == ["r01", "r03"]


@pytest.mark.parametrize("bad", ["999", "42", "not ok", "4xx"])
def test_a_status_that_is_none_is_refused(capsys, seeded, bad):
    code, out, err = cli(capsys, seeded, "--status", bad)
    assert code == 1 and out == ""
    assert repr(bad) in err


def test_filter_by_since(capsys, seeded):
    assert ids(capsys, seeded, "--since", "24h") == ["r01", "r02", "r03"]
    assert ids(capsys, seeded, "--since", "7d") == ["r01", "r02", "r03", "r04"]
    assert ids(capsys, seeded, "--since", "150m") == ["r01", "r02"]
    assert ids(capsys, seeded, "--since", "60d") == ["r01", "r02", "r03", "r04", "r05", "r06"]
    # An ISO date is midnight UTC of that day: five days ago keeps r04 (2 days), not r05.
    day = (NOW - timedelta(days=5)).date().isoformat()
    assert ids(capsys, seeded, "--since", day) == ["r01", "r02", "r03", "r04"]
    code, out, err = cli(capsys, seeded, "--since", "yesterday")
    assert code == 1 and out == "" and "'yesterday' is not a time" in err


def test_filters_combine(capsys, seeded):
    assert ids(capsys, seeded, "--app", "alpha", "--status", "error") == ["r03"]
    assert ids(capsys, seeded, "--app", "beta", "--model", "gpt-4o-mini", "--since", "7d") == [
        "r04"
    ]
    assert ids(capsys, seeded, "--app", "beta", "--status", "429") == ["r04"]


def test_limit_shows_the_newest_and_says_how_many_more(capsys, seeded):
    code, out, _ = cli(capsys, seeded, "--limit", "2")
    assert code == 0
    _, rows = table(out.split("\n2 newest")[0])
    assert [r[1:4] for r in rows] == [
        ["alpha", "gpt-4o-mini", "200"],
        ["beta", "claude-sonnet-4-5", "402 budget_exceeded"],
    ]
    assert "2 newest of 6 shown; --limit shows more." in out
    assert ids(capsys, seeded, "--limit", "2") == ["r01", "r02"]
    assert ids(capsys, seeded, "--limit", "6") == ["r01", "r02", "r03", "r04", "r05", "r06"]
    code, out, _ = cli(capsys, seeded, "--limit", "6")
    assert "shown" not in out
    code, out, _ = cli(capsys, seeded, "--app", "alpha", "--limit", "1")
    assert "1 newest of 3 shown" in out  # the count is of the filtered log
    code, out, _ = cli(capsys, seeded, "--status", "200", "--limit", "1")
    assert "1 newest shown; more match" in out
    code, _, err = cli(capsys, seeded, "--limit", "0")
    assert code == 2 and "--limit" in err


def test_default_limit_is_fifty(capsys, empty):
    wallet = Wallet.open(resolve_data_dir(empty))
    try:
        for i in range(55):
            wallet.requests.record(
                RequestRecord(
                    id=f"q{i:02d}",
                    ts=NOW - timedelta(seconds=i),
                    endpoint="/v1/messages",
                    status=200,
                )
            )
    finally:
        wallet.close()
    assert ids(capsys, empty) == [f"q{i:02d}" for i in range(50)]
    code, out, _ = cli(capsys, empty)
    assert code == 0 and "50 newest of 55 shown" in out
    assert table(out.split("\n50 newest")[0])[1][0][1] == "(no app)"


def test_empty_log(capsys, empty):
    code, out, err = cli(capsys, empty)
    assert code == 0 and err == ""
    assert out.strip() == "No requests yet: the log fills as apps call AI through the engine."
    code, out, _ = cli(capsys, empty, "--json")
    assert code == 0 and json.loads(out) == []


def test_nothing_matching_says_so(capsys, seeded):
    code, out, _ = cli(capsys, seeded, "--app", "alpha", "--status", "402")
    assert code == 0 and out.strip() == "No requests match these filters."
    code, out, _ = cli(capsys, seeded, "--since", "30m")
    assert [r[1] for r in table(out)[1]] == ["alpha"]  # r01, a minute old
    code, out, _ = cli(capsys, seeded, "--model", "o3", "--json")
    assert json.loads(out) == []
