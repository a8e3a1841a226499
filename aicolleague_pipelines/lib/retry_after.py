"""The ``Retry-After`` header as seconds, for every HTTP client of the project (platforms,
Confluence, ticketing, alert sinks, Gemini)."""

from __future__ import annotations

import email.utils
import time
from typing import Any


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date, never negative); None when
    absent or invalid. ``headers``: any mapping with ``get`` (httpx headers are case-blind)."""
    if headers is None:
        return None
    try:
        raw = headers.get("retry-after")
    except Exception:  # noqa: BLE001 - odd header containers
        return None
    if not raw:
        return None
    raw = str(raw).strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
