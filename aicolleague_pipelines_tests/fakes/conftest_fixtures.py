"""Pytest fixtures around the loopback fake Salesforce; ``conftest.py`` imports them.

- ``fake_salesforce``: a running :class:`FakeSalesforce` with the default org (edit
  ``fake_salesforce.org`` / ``.faults`` freely inside the test).
- ``fake_salesforce_env``: the same fake, with the fake secrets of every auth kind exported as
  ``SF_FAKE_*`` environment variables (monkeypatched, so they vanish after the test).
- ``make_sf_client``: factory ``make_sf_client(kind="client_credentials", **client_kwargs)`` →
  ``(SalesforceClient, OrgConfig)`` aimed at the fake, with tiny backoff and timeouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aicolleague_pipelines_tests.fakes.salesforce import FakeSalesforce

#: Retry/timeout settings that keep the tests fast.
FAST_CLIENT_KWARGS: dict[str, Any] = {"timeout": (2.0, 2.0), "bulk_poll_interval": 0.01}


@pytest.fixture
def fake_salesforce() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as fake:
        yield fake


@pytest.fixture
def fake_salesforce_env(fake_salesforce: FakeSalesforce, monkeypatch: pytest.MonkeyPatch) -> FakeSalesforce:
    for kind in ("access_token", "client_credentials", "jwt", "password"):
        for var, value in fake_salesforce.env_for(kind).items():
            monkeypatch.setenv(var, value)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    return fake_salesforce


@pytest.fixture
def make_sf_client(fake_salesforce_env: FakeSalesforce) -> Callable[..., Any]:
    from aicolleague_pipelines.lib.salesforce.client import RetryPolicy, SalesforceClient

    def make(kind: str = "client_credentials", *, login_url: str | None = None, **kwargs: Any) -> Any:
        org = fake_salesforce_env.org_config(kind, login_url=login_url)
        opts = dict(FAST_CLIENT_KWARGS)
        opts.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01))
        opts.update(kwargs)
        return SalesforceClient(org, **opts), org

    return make
