"""Salesforce record ids: the 15→18 character check suffix and a plausibility test.

Used wherever a platform holds Salesforce ids in its own fields (Chargebee custom fields,
Intercom attributes, custom REST sources): we count how many *look* valid, never keep them.
"""

from __future__ import annotations

from typing import Any

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id_suffix(id15: str) -> str:
    """The 3-character case-safe suffix Salesforce appends to a 15-character id."""
    out = []
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        out.append(_SUFFIX_ALPHABET[bits])
    return "".join(out)


def looks_like_sf_id(value: Any, prefix: str | None = None) -> bool:
    """True for a 15- or 18-character alphanumeric Salesforce id (18: suffix checked, in any
    case, as case-insensitive systems lower it). ``prefix`` is the object's key prefix
    (``001`` for Account); None accepts any."""
    if not isinstance(value, str):
        return False
    v = value.strip()
    if len(v) not in (15, 18) or not v.isascii() or not v.isalnum():
        return False
    if prefix and not v.startswith(prefix):
        return False
    return len(v) == 15 or sf_id_suffix(v[:15]) == v[15:].upper()
