"""Loading the shipped catalog and refreshing it from a URL or a file."""

import http.server
import json
import threading
from pathlib import Path

import pytest

from aiwallet.catalog_files import load_catalog, shipped_catalog, update_catalog
from aiwallet.domain.catalog import parse_models_dev
from aiwallet.domain.errors import CatalogError, NotFound

SHIPPED_FILE = Path(__file__).parent.parent / "src" / "aiwallet" / "resources" / "models.dev.json"


def test_shipped_snapshot_has_the_main_providers():
    cat = shipped_catalog()
    for provider in ("openai", "anthropic", "google", "mistral", "deepseek", "xai"):
        assert cat.models_of(provider), provider
    assert cat.lookup("gpt-4o-mini").provider == "openai"
    assert cat.lookup("claude-sonnet-4-5").provider == "anthropic"
    assert cat.lookup("openrouter/anthropic/claude-sonnet-4.5").provider == "openrouter"
    with pytest.raises(NotFound) as err:
        cat.lookup("no-such-model-xyz")
    assert err.value.code == "unknown_model"


def test_prices_are_never_floats():
    for row in shipped_catalog():
        for value in (row.input, row.output, row.cache_read, row.cache_write, row.reasoning):
            assert value is None or type(value) is int


def _mini_catalog(**overrides) -> dict:
    data = json.loads(SHIPPED_FILE.read_text())
    data = {p: data[p] for p in ("openai", "anthropic")}
    data.update(overrides)
    return data


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "catalog" / "models.dev.json"


def test_update_from_file_writes_and_takes_precedence(tmp_path, dest):
    src = tmp_path / "api.json"
    data = _mini_catalog()
    data["openai"]["models"]["gpt-4o-mini"]["cost"]["input"] = 0.2
    src.write_text(json.dumps(data))
    result = update_catalog(dest, shipped_catalog(), str(src))
    assert result.price_changes == 1
    assert result.removed == len(shipped_catalog()) - result.models
    loaded = load_catalog(dest)
    assert loaded.problem is None
    assert loaded.catalog.lookup("gpt-4o-mini").input == 200_000_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "no providers"),
        (json.dumps({"openai": {"name": "OpenAI"}}).encode(), "no models object"),
        (json.dumps({"mistral": {"models": {}}}).encode(), "partial"),
        (
            json.dumps(
                _mini_catalog(
                    openai={"models": {"gpt-x": {"cost": {"input": "cheap", "output": 1}}}}
                )
            ).encode(),
            "not a number",
        ),
        (
            json.dumps(
                _mini_catalog(openai={"models": {"gpt-x": {"cost": {"input": -1, "output": 1}}}})
            ).encode(),
            "non-negative",
        ),
    ],
)
def test_broken_or_partial_file_is_refused_and_old_kept(tmp_path, dest, content, message):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_mini_catalog()))
    update_catalog(dest, shipped_catalog(), str(good))
    before = dest.read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    with pytest.raises(CatalogError, match=message):
        update_catalog(dest, load_catalog(dest).catalog, str(bad))
    assert dest.read_bytes() == before
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temp file left behind


def test_download_missing_most_models_is_refused_as_partial(tmp_path, dest):
    data = _mini_catalog()
    models = data["openai"]["models"]
    data["openai"]["models"] = dict(list(models.items())[:3])
    src = tmp_path / "partial.json"
    src.write_text(json.dumps(data))
    with pytest.raises(CatalogError, match="looks partial"):
        update_catalog(dest, shipped_catalog(), str(src))
    assert not dest.exists()


def test_corrupt_refreshed_copy_falls_back_to_shipped(dest):
    dest.parent.mkdir(parents=True)
    dest.write_text("garbage")
    loaded = load_catalog(dest)
    assert loaded.problem and "unusable" in loaded.problem
    assert len(loaded.catalog) == len(shipped_catalog())


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self):
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_update_from_url(http_server, dest):
    _Handler.status, _Handler.body = 200, json.dumps(_mini_catalog()).encode()
    url = f"http://127.0.0.1:{http_server.server_port}/api.json"
    result = update_catalog(dest, shipped_catalog(), url)
    assert result.source == url
    assert (
        parse_models_dev(dest.read_bytes(), source="t").digest == load_catalog(dest).catalog.digest
    )


def test_update_from_url_failing_keeps_old(http_server, dest):
    _Handler.status, _Handler.body = 503, b"down"
    with pytest.raises(CatalogError, match="HTTP 503"):
        update_catalog(dest, shipped_catalog(), f"http://127.0.0.1:{http_server.server_port}/")
    assert not dest.exists()
