"""No secret anywhere: the demo and live-fake extractions (every auth kind, two failures) and
platform extracts with API keys run on a PostgreSQL-backed Dagster instance with recognisable
fake secrets in the environment; then the event log (every record of every run, and every row
of every table of the instance's database), asset metadata, every file under the data home
and the instance's storage (text or binary; zips unpacked; DuckDB files read table by table)
and the graph store are scanned for each secret — raw, base64 (at every byte alignment, so
inside a longer ``Basic …`` value too), URL-encoded and JSON-escaped. None may appear.

``test_the_scanner_finds_what_is_planted`` plants secrets in each of those places and forms,
so a scanner that looks nowhere cannot pass.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from aicolleague_pipelines.definitions import defs as load_defs
from aicolleague_pipelines.defs.platforms.assets import build_platform_asset
from aicolleague_pipelines.lib.platforms.config import PlatformConfig
from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME
from aicolleague_pipelines.resources import DataHomeResource
from aicolleague_pipelines_tests.conftest import write_orgs_file
from aicolleague_pipelines_tests.fakes.chargebee import FAKE_CHARGEBEE_KEY, FakeChargebee, build_site
from aicolleague_pipelines_tests.fakes.metabase import FAKE_API_KEY, FakeMetabase
from aicolleague_pipelines_tests.fakes.salesforce import FakeSalesforce

EXPIRED_TOKEN = "00DFAKE!FAKESECRET-expired-token-e1x9"
WRONG_PASSWORD = "FAKESECRET-wrong-passw0rd/z7+q"
WRONG_MB_KEY = "mb_FAKESECRET-wrong-key-q8"
FULL_JOB_ORGS = ("acme-prod", "sf-client-credentials")  # every asset of org_refresh_job
SUBSET = ("sf_inventory", "sf_dependencies", "sf_audit_trail", "org_graph")


# --------------------------------------------------------------------------------------------
# The scanner
# --------------------------------------------------------------------------------------------
def _b64_forms(secret: bytes) -> set[bytes]:
    """Base64 text that any encoding containing ``secret`` must contain, whatever precedes it:
    for each of the three byte alignments, the 4-character groups made of secret bytes only."""
    forms: set[bytes] = set()
    for offset in range(3):
        data = b"\0" * offset + secret
        whole = len(data) // 3 * 3  # complete groups only: the last one depends on what follows
        encoded = base64.b64encode(data[:whole])
        start = 4 if offset else 0  # the first group mixes in the preceding bytes
        core = encoded[start:]
        if len(core) >= 8:
            forms.add(core)
            forms.add(core.replace(b"+", b"-").replace(b"/", b"_"))  # urlsafe
    return forms


@dataclass(frozen=True)
class Hit:
    label: str
    form: str
    where: str


class SecretScanner:
    """Finds any of ``secrets`` (label → value) in bytes, files, DuckDB files, a Dagster
    instance and a PostgreSQL database, in raw / base64 / URL-encoded / JSON-escaped form."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.patterns: list[tuple[str, str, bytes]] = []
        for label, value in secrets.items():
            raw = value.encode()
            forms = {("raw", raw)} | {("base64", f) for f in _b64_forms(raw)}
            for name, text in (("url", quote(value, safe="")), ("url+", quote_plus(value)),
                               ("json", json.dumps(value)[1:-1])):
                if text != value:
                    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)
                    forms |= {(name, text.encode()), (name, lower_hex.encode())}
            self.patterns += [(label, form, blob) for form, blob in forms]
        self.hits: list[Hit] = []
        self.scanned: dict[str, int] = {}

    def scan(self, where: str, data: bytes | str, kind: str = "bytes") -> None:
        blob = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        self.scanned[kind] = self.scanned.get(kind, 0) + 1
        for label, form, pattern in self.patterns:
            if pattern in blob:
                self.hits.append(Hit(label, form, where))

    def scan_file(self, path: Path, where: str | None = None) -> None:
        where = where or str(path)
        data = path.read_bytes()
        self.scan(where, data, "file")
        if data[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(data)):
            with contextlib.suppress(zipfile.BadZipFile), zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    self.scan(f"{where}!{info.filename}", zf.read(info), "zip entry")
        if data[8:12] == b"DUCK":  # a DuckDB database file (magic after the checksum)
            self.scan_duckdb(path, where)

    def scan_tree(self, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.endswith(".wal"):
                self.scan_file(path)

    def scan_duckdb(self, path: Path, where: str) -> None:
        """Every value of every table (DuckDB compresses strings on disk: bytes alone miss them)."""
        import duckdb

        con = duckdb.connect(str(path), read_only=True)
        try:
            tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
            for table in tables:
                rows = con.execute(f'SELECT * FROM "{table}"').fetchall()  # names from the catalog
                self.scan(f"{where}#{table}", "\n".join(map(repr, rows)), "duckdb table")
        finally:
            con.close()

    def scan_instance(self, instance: dg.DagsterInstance) -> None:
        """Every event record of every run (logs, failures with stack traces, materializations
        and their metadata), every run (config, tags) and the latest materialization of every
        asset key."""
        for run in instance.get_runs():
            self.scan(f"run {run.run_id}", serialize_value(run), "run")
            for entry in instance.all_logs(run.run_id):
                self.scan(f"run {run.run_id} event", serialize_value(entry), "event")
        for key in instance.get_asset_keys():
            records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1000).records
            for record in records:
                self.scan(f"materialization {key.to_user_string()}", serialize_value(record), "materialization")

    def scan_postgres(self, url: str) -> None:
        """Every row of every table of the instance's database, as text."""
        import psycopg2
        from psycopg2 import sql

        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            for (table,) in cur.fetchall():
                cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
                self.scan(f"postgres {table}", "\n".join(map(repr, cur.fetchall())), "postgres table")


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------
def _live_orgs(fake: FakeSalesforce) -> tuple[list[dict], dict[str, str]]:
    """One live org per auth kind, plus an expired token and a wrong password (both fail)."""
    common = {"source": "live", "instance_url": fake.instance_url, "api_version": fake.version,
              "ca_bundle": fake.ca_path, "retry": {"attempts": 2, "base_delay": 0.01}}
    orgs, env = [], {}
    for kind in ("client_credentials", "jwt", "password", "access_token"):
        prefix = "SF_" + kind.upper()
        orgs.append({"name": f"sf-{kind.replace('_', '-')}", **common,
                     "auth": {"kind": kind, **fake.auth_env_keys(kind, prefix)}})
        env.update(fake.env_for(kind, prefix))
    orgs.append({"name": "sf-expired", **common,
                 "auth": {"kind": "access_token", "access_token_env": "SF_EXPIRED_TOKEN"}})
    env["SF_EXPIRED_TOKEN"] = EXPIRED_TOKEN
    bad = fake.env_for("password", "SF_BADPASS")
    bad["SF_BADPASS_PASSWORD"] = WRONG_PASSWORD
    orgs.append({"name": "sf-badpass", **common, "auth": {"kind": "password",
                                                        **fake.auth_env_keys("password", "SF_BADPASS")}})
    env.update(bad)
    return orgs, env


def _platform_assets(mb: FakeMetabase, cb: FakeChargebee) -> list[tuple[dg.AssetsDefinition, bool]]:
    """(asset, should succeed): Metabase (API key header), Chargebee (Basic auth), and
    Metabase with a wrong key (a 401 failure)."""
    cfgs = [
        (PlatformConfig(name="mb-secret", kind="metabase", org="sf-client-credentials", base_url=mb.url,
                        auth={"api_key_env": "MB_SECRET_KEY"}, retry_attempts=2, retry_base_delay=0.01), True),
        (PlatformConfig(name="cb-secret", kind="chargebee", org="sf-client-credentials", base_url=cb.base_url,
                        auth={"api_key_env": "CB_SECRET_KEY"}, retry_attempts=2, retry_base_delay=0.01), True),
        (PlatformConfig(name="mb-wrong-key", kind="metabase", base_url=mb.url,
                        auth={"api_key_env": "MB_WRONG_KEY"}, retry_attempts=2, retry_base_delay=0.01), False),
    ]
    return [(build_platform_asset(cfg), ok) for cfg, ok in cfgs]


def _secrets(fake: FakeSalesforce, env: dict[str, str]) -> dict[str, str]:
    secrets = {f"salesforce secret {i}": s for i, s in enumerate(fake.secrets()) if len(s) >= 8}
    pem_lines = [ln for ln in fake.jwt_private_key_pem.splitlines() if ln and not ln.startswith("-----")]
    secrets.update({f"JWT key line {i}": ln for i, ln in enumerate(pem_lines) if len(ln) >= 16})
    secrets.update({"expired token": EXPIRED_TOKEN, "wrong password": WRONG_PASSWORD,
                    "metabase key": FAKE_API_KEY, "chargebee key": FAKE_CHARGEBEE_KEY,
                    "wrong metabase key": WRONG_MB_KEY})
    secrets.update({f"env {k}": v for k, v in env.items()
                    if any(w in k for w in ("SECRET", "PASSWORD", "TOKEN", "KEY")) and len(v) >= 8})
    return secrets


@pytest.mark.postgres
def test_no_secret_in_event_log_metadata_files_or_graph(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    home = tmp_path / "data"
    monkeypatch.setenv("AICOLLEAGUE_HOME", str(home))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("NEO4J_URI", raising=False)
    dagster_url = postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    with FakeSalesforce() as fake, FakeMetabase() as mb, FakeChargebee(build_site(30)) as cb:
        fake.retrieve_in_progress_polls = 0  # the rollback retrieve answers at once
        live, env = _live_orgs(fake)
        env.update(MB_SECRET_KEY=FAKE_API_KEY, CB_SECRET_KEY=FAKE_CHARGEBEE_KEY, MB_WRONG_KEY=WRONG_MB_KEY)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        orgs = [{"name": "acme-prod", "source": "demo"}, *live]
        monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(write_orgs_file(tmp_path / "orgs.yaml", orgs)))
        (tmp_path / "instance").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "instance"),
                                  overrides={"storage": {"postgres": {"postgres_url": dagster_url}}}) as instance:
            instance.add_dynamic_partitions(ORG_PARTITIONS_NAME, [o["name"] for o in orgs])
            job = load_defs().resolve_job_def("org_refresh_job")
            outcomes: dict[str, bool] = {}
            for org in orgs:
                name = org["name"]
                selection = None if name in FULL_JOB_ORGS else [dg.AssetKey(k) for k in SUBSET]
                result = job.execute_in_process(instance=instance, partition_key=name, raise_on_error=False,
                                                asset_selection=selection)
                outcomes[name] = result.success
            for asset, ok in _platform_assets(mb, cb):
                result = dg.materialize([asset], instance=instance, raise_on_error=False,
                                        resources={"data_home": DataHomeResource(path=str(home))})
                outcomes[asset.key.to_user_string()] = result.success == ok
            # The runs did what they should: every auth kind worked, the two bad ones failed.
            assert outcomes == {
                "acme-prod": True, "sf-client-credentials": True, "sf-jwt": True, "sf-password": True,
                "sf-access-token": True, "sf-expired": False, "sf-badpass": False,
                "platforms/metabase/mb_secret": True, "platforms/chargebee/cb_secret": True,
                "platforms/metabase/mb_wrong_key": True,
            }, outcomes
            failures = []
            for run in instance.get_runs():
                for entry in instance.all_logs(run.run_id):
                    event = entry.dagster_event
                    if event and event.event_type_value == "STEP_FAILURE":
                        data = event.step_failure_data
                        failures.append(data.user_failure_data.description if data.user_failure_data
                                        else data.error.message)
            joined = "\n".join(failures)
            assert "INVALID_SESSION_ID" in joined and "sf-expired" in joined  # the exception texts exist
            assert "sf-badpass" in joined and "HTTP 401" in joined
            assert fake.issued_tokens and "/services/Soap/m/" in {r.path[:17] for r in fake.requests}

            secrets = _secrets(fake, env)
            scanner = SecretScanner(secrets)
            scanner.scan_instance(instance)
            scanner.scan_postgres(postgres_url)
            scanner.scan_tree(home)  # reports, plans, docs, platform extracts, graph.duckdb …
            scanner.scan_tree(Path(instance.storage_directory()))  # pickled asset outputs
            from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

            with DuckDBGraphStore(home / "graph.duckdb", read_only=True) as store:
                for org in store.orgs():
                    scanner.scan(f"graph {org}", repr(store.nodes(org)) + repr(store.edges(org)), "graph")
            scanner.scan("python logs", caplog.text, "logs")
            captured = capsys.readouterr()
            scanner.scan("console", captured.out + captured.err, "logs")

            assert scanner.hits == [], "\n".join(f"{h.label} ({h.form}) in {h.where}" for h in scanner.hits[:20])
            # It looked everywhere it claims to.
            for kind in ("run", "event", "materialization", "postgres table", "file",
                         "duckdb table", "graph", "logs"):
                assert scanner.scanned.get(kind, 0) > 0, f"nothing of kind {kind!r} was scanned"
            assert len(secrets) >= 15

            # The same scan of the same instance finds a secret once one is there.
            canary = "FAKESECRET-canary-" + "k3y/+=="

            @dg.asset(name="leaky_asset")
            def leaky(context):  # noqa: ANN001 - Dagster reads the annotation at runtime
                context.log.info(f"connecting with Basic {base64.b64encode(f'user:{canary}'.encode()).decode()}")
                return dg.MaterializeResult(metadata={"url": f"https://x.example/?token={quote(canary, safe='')}"})

            assert dg.materialize([leaky], instance=instance).success
            planted = SecretScanner({"canary": canary})
            planted.scan_instance(instance)
            planted.scan_postgres(postgres_url)
            found = {(h.form, h.where.split(" ")[0]) for h in planted.hits}
            assert {("base64", "run"), ("url", "materialization"), ("base64", "postgres"),
                    ("url", "postgres")} <= found, found


def test_the_scanner_finds_what_is_planted(tmp_path: Path) -> None:
    from aicolleague_pipelines.lib.graph.model import Node
    from aicolleague_pipelines.lib.graph.store_duckdb import DuckDBGraphStore

    secret = "FAKESECRET-planted-value-!&/+ 42"
    root = tmp_path / "home"
    (root / "logs").mkdir(parents=True)
    (root / "plain.txt").write_text(f"token={secret}\n")
    (root / "logs" / "req.log").write_text(
        "Authorization: Basic " + base64.b64encode(f"some-user:{secret}".encode()).decode() + "\n")
    (root / "logs" / "url.log").write_text(f"GET /cb?code={quote_plus(secret)} HTTP/1.1\n")
    (root / "data.json").write_text(json.dumps({"v": secret + "\n"}))
    with zipfile.ZipFile(root / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("deep/file.xml", f"<x>{secret}</x>" * 50)  # compressed: not in the raw bytes
    with DuckDBGraphStore(root / "graph.duckdb") as store:
        store.load_snapshot("o", [Node(f"ApexClass:K{i}", "ApexClass", f"K{i}", attrs={"s": secret})
                                  for i in range(3000)], [])
    scanner = SecretScanner({"planted": secret})
    scanner.scan_tree(root)
    found = {(Path(h.where.split("!")[0].split("#")[0]).name, h.form) for h in scanner.hits}
    assert {("plain.txt", "raw"), ("req.log", "base64"), ("url.log", "url+"), ("data.json", "raw")} <= found, found
    assert any("!deep/file.xml" in h.where for h in scanner.hits)
    assert any(h.where.endswith("graph.duckdb#nodes") for h in scanner.hits)
    assert not zipfile.ZipFile(root / "bundle.zip").read("deep/file.xml").decode() in (root / "bundle.zip").read_text(
        "latin-1"), "the zip entry should be compressed (else this proves nothing)"
    # nothing else is flagged
    clean = SecretScanner({"other": "FAKESECRET-not-planted-anywhere"})
    clean.scan_tree(root)
    assert clean.hits == []
