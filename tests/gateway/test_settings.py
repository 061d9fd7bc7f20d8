"""Configuration fails at start-up, clearly, when it cannot be used safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.registry import UnknownAdapterKind
from gateway.run.app import create_app
from gateway.settings import DEV_ID_KEY, ConfigError, load_settings
from gateway.trust_config import IssuerConfig

pytestmark = pytest.mark.anyio

SOURCE = {"id": "region-x", "kind": "fhir-r4", "base_url": "http://127.0.0.1:1/fhir"}
SECRETS = {"id_key": "k" * 20, "data_key": "d" * 20, "audit_checkpoint_key": "a1" * 32}


def test_default_secrets_refused_outside_dev_mode() -> None:
    with pytest.raises(ConfigError, match="id_key"):
        load_settings(None, data_key="d" * 20)
    with pytest.raises(ConfigError, match="id_key"):
        load_settings(None, id_key=DEV_ID_KEY, data_key="d" * 20)
    assert load_settings(None, dev_mode=True).dev_mode


def test_dev_issuer_only_trusted_in_dev_mode(tmp_path: Path) -> None:
    issuer = IssuerConfig(
        issuer="http://x/dev-issuer",
        audience="http://x/fhir",
        jwks_file=tmp_path / "jwks.json",
        dev_signing_key_file=tmp_path / "key.json",
    )
    with pytest.raises(ConfigError, match="development issuer"):
        load_settings(None, issuers=[issuer], **SECRETS)


@pytest.mark.parametrize("algorithms", [("none",), ("HS256",), ("RS256", "HS512")])
def test_unsafe_algorithms_refused(tmp_path: Path, algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        IssuerConfig(issuer="i", audience="a", jwks_file=tmp_path / "j.json", algorithms=algorithms)


async def test_unknown_adapter_kind_fails_at_start_listing_valid_kinds(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        sources=[SOURCE | {"kind": "hl7v2-carrier-pigeon"}],
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        auto_migrate=True,
        **SECRETS,
    )
    app = create_app(settings)
    with pytest.raises(UnknownAdapterKind, match="fhir-r4"):
        async with app.router.lifespan_context(app):
            pass


def test_config_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "samlad.toml"
    config.write_text(
        """
[gateway]
public_base_url = "https://samlad.example"
database_url = "sqlite:///from-file.db"
id_key = "file-id-key-0123456789"
data_key = "file-data-key-0123456789"
audit_checkpoint_key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
audit_checkpoint_file = "anchors/audit-checkpoints.jsonl"

[[sources]]
id = "region-x"
kind = "fhir-r4"
base_url = "http://127.0.0.1:1/fhir"
[sources.auth]
type = "bearer"
token = "very-secret-upstream-token"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("SAMLAD_DATABASE_URL", "postgresql://db.example/samlad")
    settings = load_settings(config)
    assert settings.public_base_url == "https://samlad.example"
    assert settings.database_url == "postgresql://db.example/samlad"
    assert settings.sources[0].id == "region-x"
    assert settings.effective_audit_checkpoint_file == tmp_path / "anchors/audit-checkpoints.jsonl"
    assert "very-secret-upstream-token" not in repr(settings)
    assert "0123456789abcdef0123456789abcdef" not in repr(settings)


@pytest.mark.parametrize(
    "body",
    ["[gateway]\nnonsense = 1\n", "[whatever]\n", "not toml at all [", "[[sources]]\nid = 'x'\n"],
)
def test_invalid_config_files(tmp_path: Path, body: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_settings(config, **SECRETS)


def test_duplicate_source_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        load_settings(None, sources=[SOURCE, SOURCE], **SECRETS)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("gateway = 3\n", "[gateway] in"),
        ("sources = 5\n", "sources: Input should be a valid list"),
        ("[sources]\nid = 'x'\n", "sources: Input should be a valid list"),
        ("sources = [1]\n", "sources.0: Input should be a valid dictionary"),
        ("[[issuers]]\njwks_file = 3\n", "issuers.0"),
        ("[gateway]\ndata_dir = 3\n", "data_dir"),
        (
            "[[sources]]\nid = 'x'\nkind = 'fhir-r4'\nbase_url = 'ftp://x'\n"
            "auth = { type = 'bearer', token = 'upstream-secret-token', extra = 1 }\n",
            "sources.0.base_url: String should match pattern",
        ),
    ],
)
def test_a_config_file_of_the_wrong_shape_is_refused_in_one_line(
    tmp_path: Path, body: str, problem: str
) -> None:
    """Tables where arrays belong, numbers where paths belong: a ConfigError that says
    where, in one line and without the values, never a crash while reading."""
    config = tmp_path / "bad.toml"
    config.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, **SECRETS)
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message
    assert "upstream-secret-token" not in message
    assert "ftp://x" not in message
