"""orgs.yaml parsing and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicolleague_pipelines.lib.orgs import OrgsConfigError, demo_root, load_orgs
from aicolleague_pipelines_tests.conftest import write_orgs_file


def test_bundled_demo_orgs_file_lists_three_demo_orgs() -> None:
    orgs = load_orgs(demo_root() / "orgs.yaml")
    assert len(orgs) >= 3
    assert {o.source for o in orgs} == {"demo"}
    for org in orgs:
        assert org.path is not None and (org.path / "sfdx-project.json").is_file()


def test_default_orgs_file_is_the_demo_unless_env_points_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [o.name for o in load_orgs()] == [o.name for o in load_orgs(demo_root() / "orgs.yaml")]
    project = tmp_path / "proj"
    project.mkdir()
    f = write_orgs_file(tmp_path / "orgs.yaml", [{"name": "mine", "source": "sfdx", "path": "proj"}])
    monkeypatch.setenv("AICOLLEAGUE_ORGS_FILE", str(f))
    (org,) = load_orgs()
    assert org.name == "mine" and org.path == project.resolve()


def test_live_org_with_each_auth_kind(tmp_path: Path) -> None:
    f = write_orgs_file(
        tmp_path / "orgs.yaml",
        [
            {
                "name": "prod",
                "source": "live",
                "instance_url": "https://acme.my.salesforce.com/",
                "api_version": "61.0",
                "auth": {"kind": "access_token", "access_token_env": "SF_TOKEN"},
            },
            {
                "name": "cc",
                "source": "live",
                "instance_url": "https://acme.my.salesforce.com",
                "auth": {"kind": "client_credentials", "client_id_env": "A", "client_secret_env": "B"},
            },
            {
                "name": "jwt_org",
                "source": "live",
                "instance_url": "https://acme.my.salesforce.com",
                "auth": {
                    "kind": "jwt",
                    "client_id_env": "A",
                    "username_env": "U",
                    "private_key_env": "K",
                    "login_url": "https://test.salesforce.com",
                },
            },
            {
                "name": "pw",
                "source": "live",
                "instance_url": "https://acme.my.salesforce.com",
                "auth": {"kind": "password", "username_env": "U", "password_env": "P"},
            },
        ],
    )
    prod, cc, jwt_org, pw = load_orgs(f)
    assert prod.instance_url == "https://acme.my.salesforce.com"
    assert prod.api_version == "61.0"
    assert prod.auth is not None and prod.auth.env == {"access_token_env": "SF_TOKEN"}
    assert cc.auth is not None and cc.auth.kind == "client_credentials"
    assert jwt_org.auth is not None and jwt_org.auth.login_url == "https://test.salesforce.com"
    assert pw.auth is not None and pw.auth.kind == "password"
    assert "SF_TOKEN" not in prod.describe()  # describe() names the kind, not variables


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "bad name", "source": "demo"}, "invalid"),
        ({"name": "x;drop", "source": "demo"}, "invalid"),
        ({"name": "ok", "source": "ftp"}, "source must be one of"),
        ({"name": "ok", "source": "sfdx"}, "needs a 'path'"),
        ({"name": "ok", "source": "demo", "demo": "no-such-demo"}, "no bundled demo org"),
        ({"name": "ok", "source": "live", "instance_url": "http://x"}, "https://"),
        ({"name": "ok", "source": "live", "instance_url": "https://x"}, "auth"),
        (
            {"name": "ok", "source": "live", "instance_url": "https://x", "auth": {"kind": "magic"}},
            "auth.kind must be one of",
        ),
        (
            {"name": "ok", "source": "live", "instance_url": "https://x",
             "auth": {"kind": "client_credentials", "client_id_env": "A"}},
            "client_secret_env",
        ),
    ],
)
def test_invalid_entries_are_refused_with_a_clear_message(
    tmp_path: Path, entry: dict, message: str
) -> None:
    f = write_orgs_file(tmp_path / "orgs.yaml", [entry])
    with pytest.raises(OrgsConfigError, match=message):
        load_orgs(f)


def test_a_literal_secret_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    secret = "00Dxx0000000001!AQ0AQSECRETVALUE"
    f = write_orgs_file(
        tmp_path / "orgs.yaml",
        [
            {
                "name": "prod",
                "source": "live",
                "instance_url": "https://acme.my.salesforce.com",
                "auth": {"kind": "access_token", "access_token": secret},
            }
        ],
    )
    with pytest.raises(OrgsConfigError) as info:
        load_orgs(f)
    assert "access_token_env" in str(info.value)
    assert secret not in str(info.value)


def test_duplicate_names_and_broken_yaml(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    f = write_orgs_file(
        tmp_path / "orgs.yaml",
        [{"name": "a", "source": "sfdx", "path": "p"}, {"name": "a", "source": "sfdx", "path": "p"}],
    )
    with pytest.raises(OrgsConfigError, match="appears twice"):
        load_orgs(f)
    f.write_text("orgs: [unclosed")
    with pytest.raises(OrgsConfigError, match="not valid YAML"):
        load_orgs(f)
    with pytest.raises(OrgsConfigError, match="not found"):
        load_orgs(tmp_path / "missing.yaml")


def test_secret_is_read_from_the_named_variable_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = write_orgs_file(
        tmp_path / "orgs.yaml",
        [{"name": "prod", "source": "live", "instance_url": "https://x",
          "auth": {"kind": "access_token", "access_token_env": "MY_SF_TOKEN"}}],
    )
    (org,) = load_orgs(f)
    assert org.auth is not None
    monkeypatch.delenv("MY_SF_TOKEN", raising=False)
    with pytest.raises(OrgsConfigError, match="MY_SF_TOKEN.*not set"):
        org.auth.secret("access_token_env", org.name)
    monkeypatch.setenv("MY_SF_TOKEN", "tok")
    assert org.auth.secret("access_token_env", org.name) == "tok"


def test_retry_settings(tmp_path: Path) -> None:
    base = {"name": "p", "source": "live", "instance_url": "https://x",
            "auth": {"kind": "access_token", "access_token_env": "T"}}
    f = write_orgs_file(tmp_path / "orgs.yaml", [{**base, "retry": {"attempts": 2, "base_delay": 0.5}}])
    (org,) = load_orgs(f)
    assert (org.retry_attempts, org.retry_base_delay) == (2, 0.5)
    f = write_orgs_file(tmp_path / "orgs.yaml", [{**base, "retry": {"attempts": 0}}])
    with pytest.raises(OrgsConfigError, match="retry"):
        load_orgs(f)


def test_dependency_mode(tmp_path: Path) -> None:
    base = {"name": "p", "source": "live", "instance_url": "https://x",
            "auth": {"kind": "access_token", "access_token_env": "T"}}
    (org,) = load_orgs(write_orgs_file(tmp_path / "o.yaml", [base]))
    assert org.dependency_mode == "auto"
    (org,) = load_orgs(write_orgs_file(tmp_path / "o.yaml", [{**base, "dependencies": "bulk"}]))
    assert org.dependency_mode == "bulk"
    with pytest.raises(OrgsConfigError, match="dependencies must be one of"):
        load_orgs(write_orgs_file(tmp_path / "o.yaml", [{**base, "dependencies": "magic"}]))


def test_the_example_orgs_file_is_valid() -> None:
    """orgs.example.yaml is what users copy: every entry in it must load."""
    orgs = load_orgs(Path(__file__).resolve().parents[1] / "orgs.example.yaml")
    assert {o.source for o in orgs} == {"live", "sfdx", "demo"}
    prod = next(o for o in orgs if o.name == "prod")
    assert prod.signals.api_share == 0.02 and "FlowExecution" in (prod.signals.event_types or ())
