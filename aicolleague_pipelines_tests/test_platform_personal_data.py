"""Personal data never leaves a platform extract.

Chargebee customers and Intercom contacts / conversations are people. The fixtures below are
full of recognisable markers (names, emails, phones, addresses, message bodies, custom field
and custom attribute values, Salesforce link values); both extracts run against the loopback
fakes, and the whole serialised PlatformExtract plus every log record (DEBUG and up, httpx
included) is scanned: no marker may appear. The aggregates must still be the right numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.platforms.chargebee import extract_chargebee
from aicolleague_pipelines.lib.platforms.config import PlatformConfig
from aicolleague_pipelines.lib.platforms.intercom import extract_intercom
from aicolleague_pipelines.lib.platforms.model import PlatformExtract
from aicolleague_pipelines_tests.fakes.chargebee import FAKE_CHARGEBEE_KEY, FakeChargebee, account_id, build_site
from aicolleague_pipelines_tests.fakes.intercom import FAKE_INTERCOM_TOKEN, FakeIntercom, build_workspace

EXPORTS = Path(__file__).resolve().parents[1] / "aicolleague_pipelines" / "demo" / "exports"


def cb_person(i: int) -> dict[str, str]:
    return {
        "first_name": f"Zelphine{i:03d}", "last_name": f"Quarrington{i:03d}",
        "email": f"zelphine.quarrington{i:03d}@pii-marker.test", "phone": f"+1-555-01{i:02d}-9931",
        "company": f"Quarrington Holdings {i:03d}", "line1": f"{i} Wobbleberry Lane", "city": "Frobisher Falls",
        "cf_notes": f"cfval-private-note-{i:03d}-likes-jazz",
    }


def ic_person(i: int) -> dict[str, str]:
    return {
        "name": f"Bartholomew Xylander {i:03d}", "email": f"bart.xylander{i:03d}@pii-marker.test",
        "phone": f"+44-7700-9{i:05d}", "city": "Grimsby-on-Marker",
        "note": f"attrval-secret-{i:03d}-allergic-to-cats",
        "body": f"<p>Hi, my card ending 4242-{i:03d} was charged twice, call me at home</p>",
    }


def cb_link(i: int) -> str | None:
    return None if i % 9 == 0 else f"PIILINK-not-an-id-{i:03d}" if i % 9 == 4 else account_id(1000 + i)


def ic_link(i: int) -> str | None:
    return None if i % 5 == 0 else f"PIILINK-ic-{i:03d}" if i % 5 == 3 else account_id(5000 + i)


def markers() -> list[str]:
    out: list[str] = []
    for i in range(1, 231):
        out += [v for v in cb_person(i).values()] + [v for v in ic_person(i).values()]
        out += [v for v in (cb_link(i), ic_link(i)) if v]
    out += [f"Company Of Quiet Person {i:03d}" for i in range(1, 61)]
    # generic patterns on top of the exact strings
    return out


PATTERNS = [r"Zelphine", r"Quarrington", r"Xylander", r"pii-marker\.test", r"Wobbleberry", r"Frobisher",
            r"Grimsby", r"cfval-private", r"attrval-secret", r"4242-", r"PIILINK", r"Quiet Person",
            r"001Dn\d{7}Xa", r"\+1-555-01", r"\+44-7700-9", "likes-jazz", "allergic-to-cats"]


def _serialise(ex: PlatformExtract) -> str:
    return json.dumps(dataclasses.asdict(ex), default=str)


def _assert_clean(text: str, where: str) -> None:
    for pattern in PATTERNS:
        assert not re.search(pattern, text), f"personal data pattern {pattern!r} found in {where}"
    for marker in markers():
        assert marker not in text, f"personal data {marker!r} found in {where}"


@pytest.fixture
def envs(monkeypatch):
    monkeypatch.setenv("PD_CB_KEY", FAKE_CHARGEBEE_KEY)
    monkeypatch.setenv("PD_IC_TOKEN", FAKE_INTERCOM_TOKEN)


def test_no_personal_data_in_extracts_or_logs(envs, caplog):
    caplog.set_level(logging.DEBUG)
    site = build_site(230, person=cb_person, link_value=cb_link)
    ws = build_workspace(230, 60, 200, person=ic_person,
                         company_name=lambda i: f"Company Of Quiet Person {i:03d}", link_value=ic_link)
    # the fixture really carries the markers on the wire
    assert "zelphine.quarrington001@pii-marker.test" in json.dumps(site.customers)
    assert "was charged twice" in json.dumps(ws.conversations)
    with FakeChargebee(site) as cb, FakeIntercom(ws, company_page_limit=30, scroll_size=25) as ic:
        cb.fail("429", times=1, path_contains="customers")  # error paths log too
        ic.fail("429", times=1, path_contains="/contacts")
        cb_ex = extract_chargebee(PlatformConfig(
            name="pd-billing", kind="chargebee", org="acme-prod", base_url=cb.base_url,
            auth={"api_key_env": "PD_CB_KEY"}, retry_base_delay=0.001))
        ic_ex = extract_intercom(PlatformConfig(
            name="pd-support", kind="intercom", org="acme-prod", base_url=ic.base_url,
            auth={"token_env": "PD_IC_TOKEN"}, retry_base_delay=0.001,
            options={"companies_per_page": 10, "company_page_limit": 30}))
        assert any("subscription" in k for k in cb.responses)  # subscriptions carried customers too

    logs = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "pd-billing" in logs and "pd-support" in logs  # the extracts did log
    for ex in (cb_ex, ic_ex):
        _assert_clean(_serialise(ex), f"{ex.platform} extract")
    _assert_clean(logs, "log records")
    for secret in (FAKE_CHARGEBEE_KEY, FAKE_INTERCOM_TOKEN):
        assert secret not in logs and secret not in _serialise(cb_ex) + _serialise(ic_ex)

    # … and the aggregates are still the right numbers
    cb_agg = cb_ex.aggregates
    assert cb_agg["customers"]["count"] == 230
    assert cb_agg["subscriptions"]["by_status"] == dict(Counter(s["status"] for s in site.subscriptions))
    cb_values = [cb_link(i) for i in range(1, 231)]
    assert cb_agg["salesforce_link"]["with_value"] == sum(1 for v in cb_values if v)
    assert cb_agg["salesforce_link"]["valid_ids"] == sum(1 for v in cb_values if v and v.startswith("001"))
    cf = next(n for n in cb_ex.nodes if n.key == "ChargebeeCustomField:pd-billing/customer.cf_notes")
    assert cf.attrs["value_types"] == ["string"] and cf.attrs["records_with_value"] == 230

    ic_agg = ic_ex.aggregates
    assert ic_agg["contacts"]["by_role"] == dict(Counter(c["role"] for c in ws.contacts))
    assert ic_agg["companies"] == {"count": 60, "read_by": "scroll"}
    assert ic_agg["conversations"]["count"] == 200
    assert ic_agg["conversations"]["by_state"] == dict(Counter(c["state"] for c in ws.conversations))
    ic_values = [ic_link(i) for i in range(1, 61)]
    assert ic_agg["salesforce_link"]["with_value"] == sum(1 for v in ic_values if v)
    assert ic_agg["salesforce_link"]["valid_ids"] == sum(1 for v in ic_values if v and v.startswith("001"))


def test_demo_exports_drop_their_fake_people(caplog):
    caplog.set_level(logging.DEBUG)
    cb = extract_chargebee(PlatformConfig(name="acme-chargebee", kind="chargebee", org="acme-prod",
                                          export=EXPORTS / "chargebee"))
    ic = extract_intercom(PlatformConfig(name="acme-intercom", kind="intercom", org="acme-prod",
                                         export=EXPORTS / "intercom"))
    raw = (EXPORTS / "chargebee" / "responses.json").read_text() + (EXPORTS / "intercom" / "responses.json").read_text()
    assert "Test Person 1" in raw and "@example.com" in raw  # the export's people are obviously fake …
    text = _serialise(cb) + _serialise(ic) + "\n".join(r.getMessage() for r in caplog.records)
    for fake_detail in ("Test Person", "@example.com", "Springfield", "Example Street", "test message",
                        "Test note", "+1 555 0", "001Dn"):
        assert fake_detail not in text  # … and still dropped
