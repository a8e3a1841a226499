"""A careful Salesforce API client for one live org (REST, Tooling, composite, Bulk API 2.0).

Built on ``simple-salesforce`` for the request plumbing and error mapping; authentication is
done here (OAuth token endpoint on ``auth.login_url`` or the org's ``instance_url``) because
simple-salesforce's own logins build ``https://{domain}.salesforce.com`` URLs.

Guarantees:

- Secrets (tokens, client secrets, passwords, private keys) never appear in exceptions, logs
  or :attr:`SalesforceClient.stats`; every message is scrubbed of known secret values.
- ``INVALID_SESSION_ID`` → one re-authentication and the call is retried (with a static
  access token: a clear :class:`SalesforceAuthError` naming the environment variable).
- ``REQUEST_LIMIT_EXCEEDED`` (403), HTTP 429, 5xx, connection errors, timeouts and answers cut
  short or not valid JSON are retried with exponential backoff and jitter, a bounded number
  of times.
- :attr:`stats`: ``api_calls`` (every HTTP request, token requests included), ``auth_calls``,
  ``retries``, ``reauths``, ``api_usage`` (latest ``Sforce-Limit-Info`` value, ``"18/5000"``).
- :meth:`retrieve_metadata`: a Metadata API (SOAP) retrieve through simple-salesforce's
  ``SfdcMetadataApi.retrieve`` / ``retrieve_retrieve_result`` — plain SOAP envelopes POSTed on
  this client's counting session (these two calls do not go through zeep); SOAP faults are
  mapped onto the same retry / re-authentication rules as REST errors.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.metadata import SfdcMetadataApi
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from aicolleague_pipelines.lib.orgs import AuthConfig, OrgConfig, OrgsConfigError
from aicolleague_pipelines.lib.salesforce.model import ExtractionError

log = logging.getLogger(__name__)

T = TypeVar("T")

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
COMPOSITE_MAX = 25


class SalesforceAPIError(ExtractionError):
    """An API call failed; ``status``/``error_code`` say how (``MALFORMED_QUERY``, 431 …)."""

    def __init__(self, org: str, component: str, problem: str, hint: str = "", *,
                 status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(org, component, problem, hint)
        self.status = status
        self.error_code = error_code


class SalesforceAuthError(ExtractionError):
    """Authentication failed or the session cannot be renewed: fatal for the whole org."""


class SalesforceUnavailableError(ExtractionError):
    """The org could not be reached or kept refusing (limits, 5xx, timeouts): fatal."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    #: Fraction of the delay added at random (0.5 → delay × [1, 1.5)).
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return d * (1 + random.random() * self.jitter)


class _CountingSession(requests.Session):
    """A requests session that counts every request, applies a default timeout and records the
    latest ``Sforce-Limit-Info`` api-usage."""

    def __init__(self, client: "SalesforceClient", timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self._client = client
        self._timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        self._client._count("api_calls")
        resp = super().request(method, url, *args, **kwargs)
        info = resp.headers.get("Sforce-Limit-Info", "")
        m = re.search(r"api-usage=(\d+)/(\d+)", info)
        if m:
            with self._client._lock:
                self._client.stats["api_usage"] = f"{m.group(1)}/{m.group(2)}"
        return resp


class SalesforceClient:
    """One authenticated connection to one live org.

    ``retry`` and ``timeout`` (seconds, or (connect, read)) are tunable; tests use tiny ones.
    Authentication happens lazily on the first call (or explicitly via :meth:`connect`).
    """

    def __init__(
        self,
        org: OrgConfig,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        bulk_poll_interval: float = 2.0,
        bulk_max_wait: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if org.source != "live" or not org.instance_url or org.auth is None:
            raise ExtractionError(org.name, "connection", "not a live org (needs instance_url and auth)",
                                  "set source: live, instance_url and auth in orgs.yaml")
        self.org = org
        self.auth: AuthConfig = org.auth
        self.api_version = str(org.api_version)
        self.retry = retry or RetryPolicy()
        self.bulk_poll_interval = bulk_poll_interval
        self.bulk_max_wait = bulk_max_wait
        self._sleep = sleep
        self._lock = threading.Lock()
        self.stats: dict[str, Any] = {"api_calls": 0, "auth_calls": 0, "retries": 0, "reauths": 0,
                                      "api_usage": None}
        self._secrets: set[str] = set()
        self.session = _CountingSession(self, timeout)
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE / proxies from the shell must not override
        self.session.verify = org.ca_bundle or True
        self.instance_url = org.instance_url.rstrip("/")
        self._sf: Salesforce | None = None
        self._mdapis: dict[tuple[int, str], SfdcMetadataApi] = {}
        #: Warnings of the latest :meth:`retrieve_metadata` ({"file", "problem"}), e.g. members
        #: the org does not have ("Entity of type 'X' named 'Y' cannot be found").
        self.last_retrieve_messages: list[dict[str, str]] = []

    def close(self) -> None:
        """Close the HTTP connections (the client can still be used; it reconnects)."""
        self.session.close()

    def __enter__(self) -> "SalesforceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- small helpers -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.org.name

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def redact(self, text: str) -> str:
        """``text`` with every known secret value replaced by ``***``."""
        for s in sorted(self._secrets, key=len, reverse=True):
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        return text

    def _secret(self, key: str) -> str:
        try:
            value = self.auth.secret(key, self.org.name)
        except OrgsConfigError as exc:
            raise SalesforceAuthError(self.org.name, "authentication", str(exc)) from None
        self._remember(value)
        return value

    def _optional_secret(self, key: str) -> str | None:
        value = self.auth.optional_secret(key)
        if value:
            self._remember(value)
        return value

    def _remember(self, value: str) -> None:
        self._secrets.add(value)
        # A PEM key also leaks through any of its lines.
        for line in value.splitlines():
            if len(line) >= 16 and not line.startswith("-----"):
                self._secrets.add(line)

    def _var(self, key: str) -> str:
        return f"${self.auth.env.get(key, key.upper())}"

    # -- authentication ------------------------------------------------------------------
    def connect(self) -> Salesforce:
        """Authenticate if not yet done; return the simple-salesforce handle."""
        if self._sf is None:
            self._authenticate()
        assert self._sf is not None
        return self._sf

    def _authenticate(self) -> None:
        kind = self.auth.kind
        if kind == "access_token":
            token = self._secret("access_token_env")
            instance = self.instance_url
        elif kind in ("client_credentials", "jwt", "password"):
            token, instance = self._oauth_token(kind)
        else:
            raise SalesforceAuthError(self.org.name, "authentication", f"unknown auth kind {kind!r}",
                                      "use access_token, client_credentials, jwt or password")
        self._remember(token)
        self._sf = Salesforce(instance_url=instance, session_id=token, session=self.session,
                              version=self.api_version)

    def _token_url(self) -> str:
        return f"{(self.auth.login_url or self.instance_url).rstrip('/')}/services/oauth2/token"

    def _oauth_token(self, kind: str) -> tuple[str, str]:
        url = self._token_url()
        auth = None
        if kind == "client_credentials":
            cid, secret = self._secret("client_id_env"), self._secret("client_secret_env")
            data = {"grant_type": "client_credentials"}
            auth = (cid, secret)
            hint = f"check the connected app's client credentials flow and {self._var('client_id_env')} / " \
                   f"{self._var('client_secret_env')}"
        elif kind == "password":
            cid = self._optional_secret("client_id_env")
            csecret = self._optional_secret("client_secret_env")
            if not cid or not csecret:
                raise SalesforceAuthError(
                    self.org.name, "authentication", "the OAuth password grant needs a connected app",
                    "set auth.client_id_env and auth.client_secret_env (names of environment variables)")
            password = self._secret("password_env") + (self._optional_secret("security_token_env") or "")
            self._remember(password)
            data = {"grant_type": "password", "client_id": cid, "client_secret": csecret,
                    "username": self._secret("username_env"), "password": password}
            hint = f"check {self._var('username_env')}, {self._var('password_env')} (and the security token) " \
                   "and the connected app"
        else:  # jwt
            data = {"grant_type": JWT_GRANT, "assertion": self._jwt_assertion()}
            hint = f"check {self._var('client_id_env')}, {self._var('username_env')}, the certificate uploaded to " \
                   f"the connected app for {self._var('private_key_env')}, and that the user is pre-authorised"
        self._count("auth_calls")
        what = f"OAuth token endpoint {url}"
        try:
            resp = self._with_retries(what, lambda: self.session.post(
                url, data=data, auth=auth, headers={"Accept": "application/json"}))
        except SalesforceUnavailableError:
            raise
        if resp.status_code != 200:
            try:
                err = resp.json()
                detail = f"{err.get('error', '?')}: {err.get('error_description', '')}"
            except ValueError:
                detail = f"HTTP {resp.status_code}"
            raise SalesforceAuthError(self.org.name, what,
                                      self.redact(f"authentication ({kind}) failed — {detail}"), hint)
        try:
            body = resp.json()
            token = body["access_token"]
        except (ValueError, KeyError):
            raise SalesforceAuthError(self.org.name, what, "the token response holds no access_token",
                                      "check auth.login_url points at a Salesforce login/My Domain URL") from None
        self._remember(token)
        instance = str(body.get("instance_url") or self.instance_url).rstrip("/")
        return token, instance

    def _jwt_assertion(self) -> str:
        try:
            import jwt  # PyJWT (a simple-salesforce dependency); cryptography signs RS256
        except ImportError:  # pragma: no cover - both ship with simple-salesforce
            raise SalesforceAuthError(self.org.name, "authentication", "JWT auth needs PyJWT and cryptography",
                                      "pip install 'pyjwt[crypto]'") from None
        key = self._secret("private_key_env")
        if "-----BEGIN" not in key:
            # The variable may name a key file instead of holding the PEM itself.
            path = Path(key).expanduser()
            try:
                key = path.read_text()
            except OSError:
                raise SalesforceAuthError(
                    self.org.name, "authentication",
                    f"{self._var('private_key_env')} holds neither a PEM private key nor a readable key file",
                    "put the PEM text (or the path of the key file) in that variable") from None
            self._remember(key)
        aud = self.auth.login_url or (
            "https://test.salesforce.com" if ".sandbox." in self.instance_url else "https://login.salesforce.com")
        claims = {"iss": self._secret("client_id_env"), "sub": self._secret("username_env"), "aud": aud,
                  "exp": int(time.time()) + 180}
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except Exception as exc:
            raise SalesforceAuthError(self.org.name, "authentication",
                                      f"cannot sign the JWT with {self._var('private_key_env')} ({type(exc).__name__})",
                                      "the variable must hold an RSA private key in PEM form") from None

    # -- the call wrapper --------------------------------------------------------------------
    def _with_retries(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` retrying transient failures (limits, 429, 5xx, connection, timeout)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fn()
                status = getattr(result, "status_code", None)
                if isinstance(status, int) and (status == 429 or status >= 500):
                    raise _Transient(f"HTTP {status}")
                return result
            except SalesforceRefusedRequest as exc:
                if _error_code(exc) != "REQUEST_LIMIT_EXCEEDED":
                    raise
                problem, hint = "REQUEST_LIMIT_EXCEEDED (API request limit)", \
                    "the org's API limits are exhausted; retry later or raise the limit"
            except SalesforceGeneralError as exc:
                if not (exc.status == 429 or exc.status >= 500):
                    raise
                problem, hint = f"HTTP {exc.status} {_error_code(exc) or ''}".strip(), \
                    "Salesforce is throttling or unavailable; retry later"
            except _Transient as exc:
                problem, hint = str(exc), "Salesforce is throttling or unavailable; retry later"
            except requests.Timeout:
                problem = f"no answer within the timeout from {self.instance_url}"
                hint = "the org is slow or unreachable; retry later or raise the client timeout"
            except requests.exceptions.SSLError as exc:
                raise SalesforceUnavailableError(
                    self.org.name, what, self.redact(f"TLS failure talking to {self.instance_url}: "
                                                     f"{type(exc).__name__}"),
                    "check ca_bundle in orgs.yaml (or the proxy's certificate)") from None
            except requests.ConnectionError:
                problem = f"cannot connect to {self.instance_url}"
                hint = "check instance_url in orgs.yaml, the network/proxy, and that the org is up"
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                    requests.exceptions.JSONDecodeError, json.JSONDecodeError) as exc:
                # A body cut short or mangled on the way (these are OSErrors to requests, so
                # they must be caught before the ca_bundle branch): transient, like a reset.
                problem = f"the answer was cut short or is not valid JSON ({type(exc).__name__})"
                hint = "the connection or a proxy truncated Salesforce's answers; retry later"
            except OSError as exc:  # e.g. an unreadable ca_bundle file
                raise SalesforceUnavailableError(self.org.name, what, self.redact(f"{type(exc).__name__}: {exc}"),
                                                 "check ca_bundle in orgs.yaml") from None
            if attempt >= self.retry.max_attempts:
                raise SalesforceUnavailableError(self.org.name, what,
                                                 self.redact(f"gave up after {attempt} attempts: {problem}"), hint)
            delay = self.retry.delay(attempt)
            self._count("retries")
            log.warning("org %s: %s: %s — retry %d/%d in %.2fs", self.org.name, what, problem, attempt,
                        self.retry.max_attempts - 1, delay)
            self._sleep(delay)

    def call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        """Run ``fn(sf)`` with retries, one re-authentication on INVALID_SESSION_ID, and errors
        turned into :class:`ExtractionError` subclasses naming the org and ``what``."""
        reauthed = False
        while True:
            sf = self.connect()
            try:
                return self._with_retries(what, lambda: fn(sf))
            except SalesforceExpiredSession:
                if self.auth.kind == "access_token":
                    var = self._var("access_token_env")
                    raise SalesforceAuthError(
                        self.org.name, what, "session expired or invalid (INVALID_SESSION_ID)",
                        f"refresh the token in {var} (e.g. `sf org display`) and re-run") from None
                if reauthed:
                    raise SalesforceAuthError(
                        self.org.name, what, "INVALID_SESSION_ID again right after re-authenticating",
                        "check the connected app's session policies and the integration user") from None
                reauthed = True
                self._count("reauths")
                log.info("org %s: session expired during %s; re-authenticating (%s)", self.org.name, what,
                         self.auth.kind)
                self._sf = None
            except SalesforceError as exc:
                raise self._api_error(what, exc) from None
            except ExtractionError:
                raise

    def _api_error(self, what: str, exc: SalesforceError) -> SalesforceAPIError:
        code = _error_code(exc)
        message = _error_message(exc)
        status = getattr(exc, "status", None)
        if isinstance(exc, SalesforceMalformedRequest):
            hint = "the query or request is not accepted by this org/API version; check field names and " \
                   "the org's API version"
        elif isinstance(exc, SalesforceRefusedRequest):
            hint = "the integration user lacks a permission (e.g. View Setup and Configuration, API Enabled, " \
                   "Author Apex for Tooling)"
        elif isinstance(exc, SalesforceResourceNotFound):
            hint = "the object or resource does not exist in this org / API version"
        elif status == 431:
            hint = "the request URL is too long; use smaller batches"
        else:
            hint = "see the Salesforce error code; retry later if it is transient"
        problem = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        return SalesforceAPIError(self.org.name, what, self.redact(problem), hint, status=status, error_code=code)

    # -- API methods -----------------------------------------------------------------------
    def query_all(self, soql: str, *, what: str | None = None) -> list[dict[str, Any]]:
        """REST (data API) query, every page."""
        return list(self._paged(soql, tooling=False, what=what))

    def tooling_query_all(self, soql: str, *, what: str | None = None) -> list[dict[str, Any]]:
        """Tooling API query, every page (``nextRecordsUrl`` via queryMore)."""
        return list(self._paged(soql, tooling=True, what=what))

    def tooling_query(self, soql: str, *, what: str | None = None) -> dict[str, Any]:
        """One Tooling query page, raw (``size``, ``done``, ``records`` …)."""
        w = what or f"tooling:{_object_of(soql)}"
        return self.call(w, lambda sf: _json(sf.toolingexecute("query/", params={"q": soql})))

    def _paged(self, soql: str, *, tooling: bool, what: str | None) -> Iterator[dict[str, Any]]:
        w = what or f"{'tooling' if tooling else 'rest'}:{_object_of(soql)}"
        if tooling:
            page = self.tooling_query(soql, what=w)
        else:
            page = self.call(w, lambda sf: sf.query(soql))
        while True:
            yield from page.get("records", [])
            nxt = page.get("nextRecordsUrl")
            if page.get("done", True) or not nxt:
                return
            page = self.call(w, lambda sf, nxt=nxt: sf.query_more(nxt, identifier_is_url=True))

    def describe(self, sobject: str) -> dict[str, Any]:
        if not re.fullmatch(r"\w+", sobject):
            raise ValueError(f"not an sObject name: {sobject!r}")
        return self.call(f"describe:{sobject}", lambda sf: sf.restful(f"sobjects/{sobject}/describe"))

    def limits(self) -> dict[str, Any]:
        return self.call("limits", lambda sf: sf.restful("limits/"))

    def download(self, path: str, *, what: str) -> bytes:
        """The raw body of a data-API resource below ``/services/data/vXX.X/`` (a blob such as
        ``sobjects/EventLogFile/<Id>/LogFile``), with the usual retries and re-authentication."""
        if not re.fullmatch(r"[\w/.-]+", path) or ".." in path:
            raise ValueError(f"not a resource path: {path!r}")
        url = f"{self._sf_base()}{path.lstrip('/')}"
        resp = self.call(what, lambda sf: sf._call_salesforce("GET", url, name=what, headers={"Accept": "*/*"}))
        return resp.content

    def tooling_composite_get(self, urls: Iterable[str], *, what: str = "tooling:composite"
                              ) -> list[dict[str, Any]]:
        """GET each Tooling URL (``/services/data/vXX/tooling/sobjects/Type/Id`` or the short
        ``sobjects/Type/Id``) through ``POST tooling/composite``, 25 at a time. Returns one
        ``{"url", "status", "body"}`` per URL, in order; failures are per item, not raised."""
        full = [u if u.startswith("/services/") else f"/services/data/v{self.api_version}/tooling/{u.lstrip('/')}"
                for u in urls]
        out: list[dict[str, Any]] = []
        for i in range(0, len(full), COMPOSITE_MAX):
            chunk = full[i:i + COMPOSITE_MAX]
            payload = {"allOrNone": False, "compositeRequest": [
                {"method": "GET", "url": u, "referenceId": f"r{j}"} for j, u in enumerate(chunk)]}
            resp = self.call(what, lambda sf, payload=payload: sf.restful("tooling/composite", method="POST",
                                                                          json=payload))
            by_ref = {r.get("referenceId"): r for r in (resp or {}).get("compositeResponse", [])}
            for j, u in enumerate(chunk):
                r = by_ref.get(f"r{j}", {})
                out.append({"url": u, "status": r.get("httpStatusCode"), "body": r.get("body")})
        return out

    def tooling_bulk_query(self, soql: str, *, what: str | None = None, max_records: int | None = None
                           ) -> list[dict[str, Any]]:
        """Bulk API 2.0 query job on the Tooling API: create, poll, read every CSV page.

        Rows come back as dicts keyed by column name (``LastModifiedBy.Name`` stays dotted);
        empty cells become None."""
        w = what or f"tooling-bulk:{_object_of(soql)}"
        job = self.call(w, lambda sf: sf.restful("tooling/jobs/query", method="POST", json={
            "operation": "query", "query": soql, "contentType": "CSV", "columnDelimiter": "COMMA",
            "lineEnding": "LF"}))
        job_id = job["id"]
        waited = 0.0
        while True:
            status = self.call(w, lambda sf: sf.restful(f"tooling/jobs/query/{job_id}"))
            state = status.get("state")
            if state == "JobComplete":
                break
            if state in ("Failed", "Aborted"):
                raise SalesforceAPIError(self.org.name, w, f"bulk job {job_id} {state}: "
                                         f"{self.redact(str(status.get('errorMessage', '')))}",
                                         "check the query; fall back to the paged Tooling query")
            if waited >= self.bulk_max_wait:
                raise SalesforceUnavailableError(self.org.name, w, f"bulk job {job_id} still {state} after "
                                                 f"{waited:.0f}s", "retry later or raise bulk_max_wait")
            self._sleep(self.bulk_poll_interval)
            waited += self.bulk_poll_interval
        rows: list[dict[str, Any]] = []
        locator: str | None = None
        while True:
            params: dict[str, Any] = {}
            if locator:
                params["locator"] = locator
            if max_records:
                params["maxRecords"] = max_records
            url = f"{self._sf_base()}tooling/jobs/query/{job_id}/results"
            resp = self.call(w, lambda sf, params=params: sf._call_salesforce(
                "GET", url, name="bulk2_results", params=params, headers={"Accept": "text/csv"}))
            text = resp.content.decode("utf-8-sig")
            for rec in csv.DictReader(io.StringIO(text)):
                rows.append({k: (v if v != "" else None) for k, v in rec.items()})
            locator = resp.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return rows

    def _sf_base(self) -> str:
        return self.connect().base_url

    # -- Metadata API (SOAP) ---------------------------------------------------------------------
    def _mdapi(self, sf: Salesforce, version: str) -> SfdcMetadataApi:
        """simple-salesforce's Metadata API helper on this client's session, for ``sf``'s token.

        Built here rather than via ``sf.mdapi``: the helper's calls ``update()`` the headers dict
        they are given (``Content-Type: text/xml``, ``SOAPAction``), and ``sf.mdapi`` hands it
        ``sf.headers`` — the REST calls sharing it would then send XML content types."""
        key = (id(sf), version)
        md = self._mdapis.get(key)
        if md is None:
            md = SfdcMetadataApi(session=self.session, session_id=sf.session_id, instance=sf.sf_instance,
                                 metadata_url=f"https://{sf.sf_instance}/services/Soap/m/{version}/",
                                 headers=dict(sf.headers), api_version=version)
            self._mdapis = {k: v for k, v in self._mdapis.items() if k[0] == id(sf)}
            self._mdapis[key] = md
        return md

    def _soap(self, fn: Callable[[], T]) -> T:
        """Run one SOAP call, turning a SOAP fault into the simple-salesforce exception the REST
        error handling understands (INVALID_SESSION_ID → re-authentication, REQUEST_LIMIT_EXCEEDED
        → retry, other faults → no retry)."""
        try:
            return fn()
        except SalesforceError as exc:
            fault = _soap_fault(getattr(exc, "content", None))
            if fault is None:
                raise
            code, message = fault
            content = [{"errorCode": code, "message": message}]
            url, name = getattr(exc, "url", ""), getattr(exc, "resource_name", "metadata")
            if code == "INVALID_SESSION_ID":
                raise SalesforceExpiredSession(url, 401, name, content) from None
            if code == "REQUEST_LIMIT_EXCEEDED":
                raise SalesforceRefusedRequest(url, 403, name, content) from None
            if code in ("SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION"):
                raise SalesforceGeneralError(url, 503, name, content) from None
            raise SalesforceMalformedRequest(url, getattr(exc, "status", 500), name, content) from None

    def retrieve_metadata(self, members: dict[str, list[str]], api_version: str | None = None, *,
                          max_zip_bytes: int = 64 * 1024 * 1024) -> bytes:
        """Retrieve ``members`` ({Metadata type: [full names]}) with the Metadata API; return
        the zip (``unpackaged/package.xml`` + the files in Metadata API format).

        ``retrieve`` (singlePackage false) then ``checkRetrieveStatus`` polled with backoff
        (``bulk_poll_interval`` doubling up to 8×, at most ``bulk_max_wait`` seconds in all).
        Members the org does not have are not an error (Salesforce only warns): see
        :attr:`last_retrieve_messages`. Every request counts in ``stats["api_calls"]``."""
        version = str(api_version or self.api_version)
        what = "metadata:retrieve"
        clean: dict[str, list[str]] = {}
        for type_, names in members.items():
            if not re.fullmatch(r"\w+", str(type_)):
                raise ValueError(f"not a Metadata API type: {type_!r}")
            names = sorted({str(n) for n in names if str(n)})
            if names:
                clean[type_] = [_xml_text(n) for n in names]
        if not clean:
            raise ValueError("retrieve_metadata needs at least one member")
        manual = (f"retrieve it by hand: `sf project retrieve start --manifest rollback/package.xml --target-org "
                  f"{self.org.name} --target-metadata-dir rollback/retrieved --unzip`")
        self.last_retrieve_messages = []
        self._count("metadata_retrieves")
        job_id, _state = self.call(what, lambda sf: self._soap(lambda: self._mdapi(sf, version).retrieve(
            "", unpackaged=clean, single_package=False)))
        if not job_id:
            raise SalesforceAPIError(self.org.name, what, "the retrieve call returned no async process id",
                                     "check the org's Metadata API access (Modify Metadata or "
                                     "View Setup and Configuration); or " + manual)
        waited, delay = 0.0, max(self.bulk_poll_interval, 0.0)
        while True:
            result = self.call(what, lambda sf: self._soap(lambda: self._mdapi(sf, version).retrieve_retrieve_result(
                job_id, "true")))
            status = _md_text(result, "status")
            done = _md_text(result, "done") == "true"
            if status in ("Failed", "Canceled", "Canceling"):
                code = _md_text(result, "errorStatusCode")
                msg = _md_text(result, "errorMessage")
                raise SalesforceAPIError(
                    self.org.name, what,
                    self.redact(f"retrieve {job_id} {status}" + (f" ({code})" if code else "")
                                + (f": {msg}" if msg else "")),
                    "check the member names and the integration user's Metadata API access; or " + manual,
                    error_code=code or None)
            if status == "Succeeded" or done:
                break
            if waited >= self.bulk_max_wait:
                raise SalesforceUnavailableError(self.org.name, what, f"retrieve {job_id} still {status or 'queued'} "
                                                 f"after {waited:.0f}s",
                                                 "retry later or raise bulk_max_wait; or " + manual)
            self._sleep(delay)
            waited += delay
            delay = min(max(delay * 2, 0.001), max(self.bulk_poll_interval * 8, 0.001))
        ns = "{http://soap.sforce.com/2006/04/metadata}"
        for m in list(result.iter(f"{ns}messages")):
            self.last_retrieve_messages.append({"file": m.findtext(f"{ns}fileName") or "",
                                                "problem": m.findtext(f"{ns}problem") or ""})
        for m in self.last_retrieve_messages:
            log.warning("org %s: %s: %s (%s)", self.org.name, what, m["problem"], m["file"])
        b64 = _md_text(result, "zipFile")
        if not b64:
            raise SalesforceAPIError(self.org.name, what, f"retrieve {job_id} {status or 'done'} without a zipFile",
                                     manual)
        if len(b64) > max_zip_bytes * 4 // 3 + 4:
            raise SalesforceAPIError(self.org.name, what, f"retrieve {job_id}: the zip exceeds {max_zip_bytes} bytes",
                                     "retrieve fewer members at a time; or " + manual)
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise SalesforceAPIError(self.org.name, what, f"retrieve {job_id}: the zipFile is not valid base64",
                                     manual) from None


class _Transient(Exception):
    pass


_MD_NS = "{http://soap.sforce.com/2006/04/metadata}"


def _md_text(el: Any, tag: str) -> str:
    return (el.findtext(f"{_MD_NS}{tag}") or "").strip() if el is not None else ""


def _xml_text(text: str) -> str:
    """``text`` escaped for an XML text node (simple-salesforce inserts member names verbatim)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _soap_fault(content: Any) -> tuple[str, str] | None:
    """(code, message) of a SOAP fault body (``sf:INVALID_SESSION_ID`` → ``INVALID_SESSION_ID``)."""
    if not isinstance(content, (str, bytes)) or b"Fault" not in (content if isinstance(content, bytes)
                                                                 else content.encode("utf-8", "replace")):
        return None
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return None
    fault = root.find(".//{*}Fault")
    if fault is None:
        return None
    code = (fault.findtext("faultcode") or fault.findtext("{*}faultcode") or "").strip()
    message = (fault.findtext("faultstring") or fault.findtext("{*}faultstring") or "").strip()
    return code.rsplit(":", 1)[-1] or "UNKNOWN_EXCEPTION", message[:500]


def _json(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise SalesforceGeneralError("", 502, "toolingexecute", "a non-JSON answer")
    return result


def _error_items(exc: SalesforceError) -> list[dict[str, Any]]:
    content = getattr(exc, "content", None)
    if isinstance(content, list):
        return [c for c in content if isinstance(c, dict)]
    if isinstance(content, dict):
        return [content]
    return []


def _error_code(exc: SalesforceError) -> str | None:
    items = _error_items(exc)
    return str(items[0].get("errorCode")) if items and items[0].get("errorCode") else None


def _error_message(exc: SalesforceError) -> str:
    items = _error_items(exc)
    if items:
        return "; ".join(str(i.get("message", "")) for i in items)[:500]
    content = getattr(exc, "content", "")
    return str(content)[:200] if content else ""


def _object_of(soql: str) -> str:
    m = re.search(r"\bFROM\s+(\w+)", soql, re.I)
    return m.group(1) if m else "query"
