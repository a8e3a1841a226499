"""The Gemini client and writers, driving the real google-genai client against a loopback fake."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aicolleague_pipelines.lib.llm import (
    BudgetExhausted,
    GeminiClient,
    GeminiConfig,
    GeminiError,
    GeminiTimeout,
    GeminiWriter,
    OfflineWriter,
    ResponseCache,
    build_prompt,
    make_writer,
    mentioned_keys,
)
from aicolleague_pipelines.lib.retry_after import retry_after_seconds as _retry_after_seconds
from aicolleague_pipelines_tests.fakes.gemini import FAKE_GEMINI_KEY, FakeGemini, allowed_keys_in_prompt

FACTS = {
    "question": "which flows write Account.Industry?",
    "org": "acme-prod",
    "summary": "1 flow writes `CustomField:Account.Industry` in org `acme-prod`.",
    "sections": [
        {"title": "Flows", "total": 1, "items": [
            {"key": "Flow:New_Client_Intake", "detail": "dml (write): recordCreates:Create_Account (create)",
             "evidence": ["force-app/main/default/flows/New_Client_Intake.flow-meta.xml"]}]},
        {"title": "Other components that write it", "total": 1, "items": [
            {"key": "Layout:Account-Account Layout", "detail": "shows (write)"}]},
    ],
    "notes": ["Writes found in code and flows."],
}
ALLOWED = {"CustomField:Account.Industry", "Flow:New_Client_Intake", "Layout:Account-Account Layout"}
TASK = "Answer 'which flows write Account.Industry?' about org 'acme-prod'."


def _good(text: str | None = None, cited: list[str] | None = None) -> str:
    return json.dumps({
        "text": text or "`Flow:New_Client_Intake` writes `CustomField:Account.Industry` when it creates accounts; "
                        "the field is also editable on `Layout:Account-Account Layout`.",
        "cited_keys": cited if cited is not None else ["Flow:New_Client_Intake", "CustomField:Account.Industry"],
    })


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as f:
        yield f


def _client(fake: FakeGemini, **kw) -> GeminiClient:
    cfg = {"base_url": fake.base_url, "timeout_s": 3.0, "backoff_s": 0.01, **kw}
    return GeminiClient(GeminiConfig(**cfg), api_key=FAKE_GEMINI_KEY)


# --- the normal path -----------------------------------------------------------------------
def test_grounded_answer_with_valid_citations(fake: FakeGemini) -> None:
    fake.reply(_good())
    client = _client(fake)
    w = GeminiWriter(client).write(TASK, FACTS, ALLOWED)
    assert w.source == "gemini"
    assert w.rejected_citations == []
    # cited = the model's list plus every key its text mentions
    assert w.cited_keys == ["Flow:New_Client_Intake", "CustomField:Account.Industry", "Layout:Account-Account Layout"]
    assert "Flow:New_Client_Intake" in w.text
    assert client.tokens_used == fake.usage_tokens and w.tokens == fake.usage_tokens

    (req,) = fake.requests
    assert req.path == "/v1/models/gemini-2.5-flash:generateContent"  # google-genai 3.x speaks v1
    assert req.headers["x-goog-api-key"] == FAKE_GEMINI_KEY
    gen = req.body["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseSchema"]["required"] == ["text", "cited_keys"]
    assert gen["temperature"] == 0.2 and gen["maxOutputTokens"] == 2048
    assert "only keys from ALLOWED KEYS" in req.body["systemInstruction"]["parts"][0]["text"]
    prompt = req.body["contents"][0]["parts"][0]["text"]
    assert prompt.startswith("TASK: Answer 'which flows write Account.Industry?'")
    assert '"key": "Flow:New_Client_Intake"' in prompt  # facts as JSON
    assert allowed_keys_in_prompt(req.prompt) == sorted(ALLOWED)


def test_v1beta_and_other_models_are_configurable(fake: FakeGemini) -> None:
    fake.reply(_good())
    client = _client(fake, api_version="v1beta", model="gemini-2.5-pro", temperature=0.0, max_output_tokens=512,
                     thinking_budget=128)
    assert client.generate("hello").text
    (req,) = fake.requests
    assert req.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    gen = req.body["generationConfig"]
    assert gen["maxOutputTokens"] == 512 and gen["temperature"] == 0.0
    # google-genai 3.6 serialises this one field in proto (snake_case) form; the API accepts both.
    assert gen["thinkingConfig"] in ({"thinkingBudget": 128}, {"thinking_budget": 128})


def test_offline_writer_renders_the_same_structure_deterministically() -> None:
    a = OfflineWriter().write(TASK, FACTS, ALLOWED)
    b = OfflineWriter().write(TASK, FACTS, ALLOWED)
    assert a == b and a.source == "offline"
    assert a.text.splitlines() == [
        "1 flow writes `CustomField:Account.Industry` in org `acme-prod`.",
        "",
        "**Flows** (1)",
        "- `Flow:New_Client_Intake` — dml (write): recordCreates:Create_Account (create) "
        "[force-app/main/default/flows/New_Client_Intake.flow-meta.xml]",
        "",
        "**Other components that write it** (1)",
        "- `Layout:Account-Account Layout` — shows (write)",
        "",
        "Notes:",
        "- Writes found in code and flows.",
    ]
    assert a.cited_keys == ["CustomField:Account.Industry", "Flow:New_Client_Intake", "Layout:Account-Account Layout"]


# --- malformed answers ------------------------------------------------------------------------
def test_malformed_model_json_is_retried_once(fake: FakeGemini) -> None:
    fake.reply('{"text": "cut in ha', _good())
    w = GeminiWriter(_client(fake)).write(TASK, FACTS, ALLOWED)
    assert w.source == "gemini" and len(fake.requests) == 2
    assert any("not the expected JSON" in n for n in w.notes)


def test_malformed_json_twice_falls_back_offline(fake: FakeGemini) -> None:
    fake.reply("Sure! Here is the answer: Flow:New_Client_Intake")
    w = GeminiWriter(_client(fake)).write(TASK, FACTS, ALLOWED)
    assert len(fake.requests) == 2
    assert w.source == "offline"
    assert w.text == OfflineWriter().write(TASK, FACTS, ALLOWED).text
    assert any("malformed JSON 2 times" in n for n in w.notes)


def test_malformed_http_body_is_retried_then_falls_back(fake: FakeGemini) -> None:
    fake.fail("malformed", times=1)
    fake.reply(_good())
    assert GeminiWriter(_client(fake)).write(TASK, FACTS, ALLOWED).source == "gemini"
    assert len(fake.requests) == 2
    fake.reset()
    fake.fail("malformed", times=2)
    w = GeminiWriter(_client(fake)).write(TASK, FACTS, ALLOWED)
    assert w.source == "offline" and len(fake.requests) == 2


# --- retries, timeout, budget ------------------------------------------------------------------
def test_429_is_retried_after_the_retry_after_delay(fake: FakeGemini) -> None:
    fake.fail("429", times=1, retry_after=0.6)
    fake.reply(_good())
    client = _client(fake, backoff_s=5.0)  # Retry-After wins over the (long) backoff
    t0 = time.monotonic()
    gen = client.generate("hello")
    elapsed = time.monotonic() - t0
    assert gen.attempts == 2 and len(fake.requests) == 2
    gap = fake.requests[1].at - fake.requests[0].at
    assert 0.55 <= gap < 3.0 and elapsed < 4.0


def test_5xx_retries_with_backoff_then_the_writer_falls_back(fake: FakeGemini) -> None:
    fake.fail("500", times=10)
    client = _client(fake, retries=2, backoff_s=0.05)
    with pytest.raises(GeminiError, match="HTTP 500"):
        client.generate("hello")
    assert len(fake.requests) == 3
    fake.reset()
    fake.fail("500", times=1)
    fake.reply(_good())
    assert client.generate("hello").attempts == 2
    fake.reset()
    fake.fail("503", times=10)
    w = GeminiWriter(_client(fake, retries=1)).write(TASK, FACTS, ALLOWED)
    assert w.source == "offline" and any("HTTP 503" in n for n in w.notes)


def test_timeout_falls_back_offline_with_a_note(fake: FakeGemini) -> None:
    fake.delay = 1.5
    client = _client(fake, timeout_s=0.4)
    with pytest.raises(GeminiTimeout):
        client.generate("hello")
    assert len(fake.requests) == 1  # timeouts are not retried
    t0 = time.monotonic()
    w = GeminiWriter(client).write(TASK, FACTS, ALLOWED)
    assert time.monotonic() - t0 < 1.4
    assert w.source == "offline"
    assert w.text == OfflineWriter().write(TASK, FACTS, ALLOWED).text
    assert any("did not answer within 0.4 s" in n for n in w.notes)


def test_token_budget_refuses_calls_once_spent(fake: FakeGemini) -> None:
    fake.usage_tokens = 100
    fake.reply(_good())
    client = _client(fake, token_budget=200)
    client.generate("one")
    client.generate("two")
    assert client.tokens_used == 200 and client.tokens_remaining == 0
    with pytest.raises(BudgetExhausted):
        client.generate("three")
    assert len(fake.requests) == 2  # refused before any request
    w = GeminiWriter(client).write(TASK, FACTS, ALLOWED)
    assert w.source == "offline" and any("budget spent" in n for n in w.notes)
    assert len(fake.requests) == 2


# --- grounding ------------------------------------------------------------------------------
def test_hallucinated_citation_in_text_is_rejected(fake: FakeGemini) -> None:
    fake.reply(_good(text="`Flow:New_Client_Intake` and `ApexClass:AccountIndustrySync` write "
                          "`CustomField:Account.Industry`."))
    w = GeminiWriter(_client(fake)).write(TASK, FACTS, ALLOWED)
    assert w.source == "offline"
    assert w.rejected_citations == ["ApexClass:AccountIndustrySync"]
    assert w.text == OfflineWriter().write(TASK, FACTS, ALLOWED).text
    assert "AccountIndustrySync" not in w.text
    assert any("not in the facts" in n for n in w.notes)


def test_hallucinated_key_in_cited_list_or_bare_text_is_rejected(fake: FakeGemini) -> None:
    fake.reply(_good(cited=["Flow:New_Client_Intake", "Flow:Ghost_Flow"]))
    w = GeminiWriter(_client(fake)).write(TASK, FACTS, ALLOWED)
    assert w.source == "offline" and w.rejected_citations == ["Flow:Ghost_Flow"]
    fake.reset()
    fake.reply(_good(text="Flow:New_Client_Intake writes it; so does ApexTrigger:AccountTrigger."))
    w = GeminiWriter(_client(fake)).write(TASK, FACTS, ALLOWED)
    assert w.rejected_citations == ["ApexTrigger:AccountTrigger"]


def test_mentioned_keys() -> None:
    text = ("`Flow:A` calls `ApexClass:B`; Layout:Account-Account Layout shows CustomField:Account.Industry. "
            "Note: `not a key` and Ratio: 3.")
    assert mentioned_keys(text, {"Layout:Account-Account Layout"}) == [
        "Flow:A", "ApexClass:B", "Layout:Account-Account Layout", "CustomField:Account.Industry"]


# --- cache ------------------------------------------------------------------------------------
def test_cache_hit_makes_no_request(fake: FakeGemini, tmp_path: Path) -> None:
    fake.reply(_good())
    cache_dir = tmp_path / "llm-cache"
    first = GeminiWriter(_client(fake), cache=ResponseCache(cache_dir)).write(TASK, FACTS, ALLOWED)
    assert first.source == "gemini" and len(fake.requests) == 1
    assert len(list(cache_dir.glob("*.json"))) == 1
    # a new run (new client, new cache object over the same directory) costs nothing
    client = _client(fake)
    again = GeminiWriter(client, cache=ResponseCache(cache_dir)).write(TASK, FACTS, ALLOWED)
    assert again.source == "cache" and len(fake.requests) == 1 and client.tokens_used == 0
    assert (again.text, again.cited_keys) == (first.text, first.cited_keys)
    # other facts or another model → a miss
    other = {**FACTS, "summary": "No flows write `CustomField:Account.Industry`."}
    GeminiWriter(_client(fake), cache=ResponseCache(cache_dir)).write(TASK, other, ALLOWED)
    GeminiWriter(_client(fake, model="gemini-2.5-pro"), cache=ResponseCache(cache_dir)).write(TASK, FACTS, ALLOWED)
    assert len(fake.requests) == 3


def test_rejected_answers_are_not_cached(fake: FakeGemini, tmp_path: Path) -> None:
    fake.reply(_good(cited=["Flow:Ghost"]), _good())
    cache = ResponseCache(tmp_path / "c")
    assert GeminiWriter(_client(fake), cache=cache).write(TASK, FACTS, ALLOWED).source == "offline"
    assert GeminiWriter(_client(fake), cache=cache).write(TASK, FACTS, ALLOWED).source == "gemini"
    assert len(fake.requests) == 2


# --- secrets ----------------------------------------------------------------------------------
def test_api_key_never_appears_in_logs_or_errors(fake: FakeGemini, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.reply(_good())
    client = _client(fake, retries=1)
    errors: list[str] = [repr(client), str(client)]
    client.generate("ok")
    fake.fail("429", times=1, retry_after=0)
    client.generate("after 429")
    fake.fail("500", times=5)
    with pytest.raises(GeminiError) as e1:
        client.generate("500s")
    errors.append(str(e1.value))
    wrong = GeminiClient(GeminiConfig(base_url=fake.base_url, retries=0), api_key="AIzaWRONG-but-still-secret-123")
    with pytest.raises(GeminiError) as e2:
        wrong.generate("bad key")
    errors.append(str(e2.value))
    assert "API key not valid" in str(e2.value)
    dead = GeminiClient(GeminiConfig(base_url="http://127.0.0.1:9", retries=0), api_key=FAKE_GEMINI_KEY)
    with pytest.raises(GeminiError) as e3:
        dead.generate("nobody listens")
    errors.append(str(e3.value))
    fake.reset()
    fake.delay = 1.0
    with pytest.raises(GeminiTimeout) as e4:
        _client(fake, timeout_s=0.2).generate("slow")
    errors.append(str(e4.value))
    w = GeminiWriter(_client(fake, timeout_s=0.2)).write(TASK, FACTS, ALLOWED)
    errors += w.notes
    everything = caplog.text + "\n".join(errors) + "".join(str(r.__dict__) for r in caplog.records)
    assert "HTTP Request" in caplog.text  # the transport did log
    for secret in (FAKE_GEMINI_KEY, "AIzaWRONG-but-still-secret-123"):
        assert secret not in everything


# --- choosing a writer ------------------------------------------------------------------------
def test_make_writer_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "MY_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(make_writer(), OfflineWriter)
    monkeypatch.setenv("GOOGLE_API_KEY", "k-google")
    w = make_writer(cache_dir=tmp_path)
    assert isinstance(w, GeminiWriter) and w.client.api_key == "k-google" and w.cache is not None
    monkeypatch.setenv("GEMINI_API_KEY", "k-gemini")
    assert make_writer().client.api_key == "k-gemini"
    assert isinstance(make_writer(api_key_env="MY_KEY"), OfflineWriter)  # named var only
    monkeypatch.setenv("MY_KEY", "k-mine")
    mw = make_writer(api_key_env="MY_KEY", config=GeminiConfig(model="gemini-2.5-pro"))
    assert mw.client.api_key == "k-mine" and mw.client.config.model == "gemini-2.5-pro"
    assert "k-mine" not in repr(mw)


def test_retry_after_parsing() -> None:
    assert _retry_after_seconds({"retry-after": "7"}) == 7.0
    assert _retry_after_seconds({"retry-after": "0.25"}) == 0.25
    future = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after_seconds({"retry-after": future}) <= 31
    assert _retry_after_seconds({"retry-after": "soon"}) is None
    assert _retry_after_seconds({}) is None and _retry_after_seconds(None) is None


def test_prompt_is_stable_for_the_cache() -> None:
    assert build_prompt(TASK, FACTS, set(ALLOWED)) == build_prompt(TASK, dict(FACTS), set(sorted(ALLOWED)))
