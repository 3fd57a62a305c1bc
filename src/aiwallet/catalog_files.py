"""Loading and refreshing the pricing catalog on disk.

The shipped snapshot lives in the package (``resources/models.dev.json``). ``catalog update``
writes a validated copy to the data dir, which then takes precedence. A new file is parsed
and checked completely BEFORE anything is written, and written atomically, so a broken or
partial download can never replace a working catalog.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

from aiwallet.domain.catalog import REQUIRED_PROVIDERS, Catalog, PriceRow, parse_models_dev
from aiwallet.domain.errors import CatalogError
from aiwallet.domain.openrouter_models import parse_openrouter_models

log = logging.getLogger(__name__)

MODELS_DEV_URL = "https://models.dev/api.json"
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
# A refresh that loses more than this share of the current OpenAI/Anthropic models is refused.
MAX_LOSS_SHARE = 0.5


def shipped_catalog() -> Catalog:
    """The snapshot that ships with this version of aiwallet."""
    raw = resources.files("aiwallet.resources").joinpath("models.dev.json").read_bytes()
    return parse_models_dev(raw, source="shipped snapshot (models.dev)")


@dataclass(frozen=True, slots=True)
class LoadedCatalog:
    catalog: Catalog
    problem: str | None = None  # why the data-dir copy was not used, if it exists but failed


def load_catalog(user_copy: Path) -> LoadedCatalog:
    """The user's refreshed catalog if present and valid, else the shipped snapshot."""
    if user_copy.exists():
        try:
            raw = user_copy.read_bytes()
            return LoadedCatalog(parse_models_dev(raw, source=f"refreshed copy {user_copy}"))
        except (OSError, CatalogError) as exc:
            problem = (
                f"the refreshed catalog at {user_copy} is unusable ({exc}); using the shipped one"
            )
            log.warning(problem)
            return LoadedCatalog(shipped_catalog(), problem)
    return LoadedCatalog(shipped_catalog())


@dataclass(frozen=True, slots=True)
class CatalogUpdateResult:
    source: str
    providers: int
    models: int
    added: int
    removed: int
    price_changes: int
    written_to: str

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "providers": self.providers,
            "models": self.models,
            "added": self.added,
            "removed": self.removed,
            "price_changes": self.price_changes,
            "written_to": self.written_to,
        }


def _fetch(url: str, timeout_s: float) -> bytes:
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=True) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise CatalogError(f"{url} answered HTTP {resp.status_code}; catalog not changed")
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise CatalogError(f"{url} sent more than 50 MB; catalog not changed")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise CatalogError(
            f"could not download {url} ({type(exc).__name__}); catalog not changed. "
            "Save api.json some other way and use --from FILE"
        ) from None


def _read_source(source: str, timeout_s: float) -> bytes:
    if source.startswith(("http://", "https://")):
        return _fetch(source, timeout_s)
    path = Path(source).expanduser()
    try:
        if path.stat().st_size > MAX_DOWNLOAD_BYTES:
            raise CatalogError(f"{path} is larger than 50 MB; catalog not changed")
        return path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror}; catalog not changed") from None


def _check_not_partial(new: Catalog, old: Catalog) -> None:
    for provider in REQUIRED_PROVIDERS:
        before = {r.model for r in old.models_of(provider)}
        after = {r.model for r in new.models_of(provider)}
        lost = before - after
        if before and len(lost) > len(before) * MAX_LOSS_SHARE:
            raise CatalogError(
                f"the new catalog lacks {len(lost)} of {len(before)} {provider} models; it looks "
                "partial, so the current catalog was kept"
            )


def atomic_write(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` so that a reader sees the old or the new file, never half."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def update_catalog(
    dest: Path, current: Catalog, source: str | None = None, *, timeout_s: float = 60.0
) -> CatalogUpdateResult:
    """Replace the data dir's catalog with ``source`` (URL or file) after validating it."""
    src = source or MODELS_DEV_URL
    raw = _read_source(src, timeout_s)
    new = parse_models_dev(raw, source=f"refreshed from {src}")
    _check_not_partial(new, current)
    old_rows, new_rows = current.rows, new.rows
    changed = sum(
        1
        for key, row in new_rows.items()
        if key in old_rows and row.priced_fields() != old_rows[key].priced_fields()
    )
    atomic_write(dest, raw)
    return CatalogUpdateResult(
        source=src,
        providers=len(new.providers()),
        models=len(new),
        added=len(new_rows.keys() - old_rows.keys()),
        removed=len(old_rows.keys() - new_rows.keys()),
        price_changes=changed,
        written_to=str(dest),
    )


_OPENROUTER_CACHE: dict[Path, tuple[float, dict[str, PriceRow]]] = {}


def load_openrouter_prices(path: Path) -> dict[str, PriceRow]:
    """The cached OpenRouter price list by model id ({} when never fetched or unusable);
    parsed again only when the file changed."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    hit = _OPENROUTER_CACHE.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    try:
        rows = parse_openrouter_models(path.read_bytes())
    except (OSError, CatalogError) as exc:
        log.warning("the cached OpenRouter price list at %s is unusable: %s", path, exc)
        rows = {}
    _OPENROUTER_CACHE[path] = (mtime, rows)
    return rows


def openrouter_prices_age_s(path: Path, now: float) -> float | None:
    """How old the cached list is (None: there is none)."""
    try:
        return max(0.0, now - path.stat().st_mtime)
    except OSError:
        return None
