"""The `samlad` command as a person uses it: bad values, finding the configuration, help."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from consent.scopes import CITIZEN_SCOPE
from fhir_profiles.identifiers import PERSONNUMMER_SYSTEM
from gateway import __version__
from gateway.run.app import create_app
from gateway.run.cli import build_parser, main
from gateway.run.demo import samlad_command, write_demo_config
from gateway.settings import Settings, load_settings
from simregions.regions import DEFAULT_REGIONS
from tests.demo_process import demo_environment, free_demo_ports

SAMLAD = Path(sys.executable).parent / "samlad"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder and an environment without any SAMLAD_* variable."""
    for name in [n for n in os.environ if n.startswith("SAMLAD_")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def demo_folder(folder: Path) -> Path:
    """A folder as `samlad demo` leaves it: ``.samlad/demo.toml``, keys, no database yet."""
    urls = {spec.id: spec.base_url(18101 + i) for i, spec in enumerate(DEFAULT_REGIONS)}
    return write_demo_config(folder / ".samlad", 18000, urls, DEFAULT_REGIONS)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


BAD_VALUES = [
    (["demo", "--port", "70000"], "70000 is not a port number (1 to 65535)"),
    (["demo", "--port", "0"], "0 is not a port number"),
    (["demo", "--port", "eighty"], "'eighty' is not a port number"),
    (["demo", "--region-port-base", "65534"], "no room for the 4 region ports (at most 65532)"),
    (["demo", "--port", "8102"], "--port 8102 is one of the region ports 8101-8104"),
    (["demo", "--port", "9001", "--region-port-base", "8998"], "region ports 8998-9001"),
    (["--log-level", "NOPE", "demo"], "'NOPE' is not a log level"),
    (["demo", "--log-level", "NOPE"], "'NOPE' is not a log level"),
    (["token", "--role", "citizen", "--personnummer", "123"], "not a valid personnummer"),
    (["token", "--role", "citizen", "--personnummer", "19121212-1213"], "check digit"),
    (["token", "--role", "citizen", "--personnummer", "19121312-1212"], "date of birth"),
    (["token", "--role", "citizen"], "--role citizen needs --personnummer"),
    (
        ["token", "--role", "clinician", "--personnummer", "19121212-1212"],
        "--personnummer is only for --role citizen",
    ),
    (["token", "--role", "nurse"], "invalid choice: 'nurse'"),
    (["token", "--role", "clinician", "--hsa-id", " "], "is not an id"),
    (["token", "--role", "integrator", "--lifetime", "0"], "must be at least 1"),
    (["serve", "--workers", "0"], "must be at least 1"),
    (["serve"], "samlad serve needs a configuration file: pass --config FILE"),
    (["migrate", "--config", "missing.toml"], "no configuration file at missing.toml"),
    (["migrate"], "no configuration found: run this in the folder where `samlad demo` runs"),
    (["audit", "verify"], "no configuration found"),
    (["cache", "purge"], "no configuration found"),
    (["token", "--role", "clinician"], "no configuration found"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_a_bad_value_gets_one_line_and_exit_2(
    argv: list[str], message: str, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.endswith("\n")
    assert message in err
    assert "Traceback" not in err
    assert "id_key" not in err  # the old, misleading complaint about a missing key
    assert "121212" not in err  # an identity number is never repeated


def test_a_data_dir_that_is_a_file_is_refused(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (elsewhere / "notes.txt").write_text("not a folder")
    code, _, err = run(["demo", "--data-dir", "notes.txt"], capsys)
    assert (code, err) == (2, "samlad: error: --data-dir notes.txt is a file, not a folder\n")


def test_a_port_in_use_is_named_and_nothing_starts(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, region_base = free_demo_ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        code, _, err = run(
            ["demo", "--port", str(port), "--region-port-base", str(region_base)], capsys
        )
    assert code == 2
    assert err.startswith(f"samlad: error: cannot listen on 127.0.0.1:{port} (")
    assert err.count("\n") == 1
    assert not (elsewhere / ".samlad").exists()


#: A valid ``[[sources]]`` entry for ``--add-sources``; the cases below spoil one thing each.
ADDED_SOURCE = """[[sources]]
id = "my-fhir"
name = "My FHIR server"
kind = "fhir-r4"
base_url = "http://127.0.0.1:18080/fhir"

[sources.auth]
type = "bearer"
token = "my-secret-upstream-token"
"""
BAD_ADDED_SOURCES = [
    ("missing", None, "--add-sources sources.toml: no such file"),
    ("not toml", "[[sources]\nid = ", "cannot read configuration file sources.toml"),
    ("empty", "# nothing yet\n", "--add-sources sources.toml: holds no [[sources]] entries"),
    (
        "other tables",
        "[gateway]\ndev_mode = false\n\n" + ADDED_SOURCE,
        "only [[sources]] entries belong here, not [gateway]",
    ),
    ("unknown table", "[frobnicate]\n" + ADDED_SOURCE, "unknown tables in sources.toml"),
    (
        "bad base_url",
        ADDED_SOURCE.replace("http://127.0.0.1", "ftp://127.0.0.1"),
        "sources.0.base_url: String should match pattern",
    ),
    (
        "misspelt setting",
        ADDED_SOURCE.replace("base_url", "baseurl"),
        "sources.0.base_url: Field required; sources.0.baseurl: Extra inputs are not permitted",
    ),
    (
        "unknown kind",
        ADDED_SOURCE.replace('"fhir-r4"', '"hl7v2"'),
        "source 'my-fhir': unknown kind 'hl7v2'; valid kinds: fhir-r4, legacy-xml",
    ),
    (
        "bad dialect",
        ADDED_SOURCE + '\n[sources.dialect]\nidentifier_formats = ["yyyy"]\n',
        "source 'my-fhir': invalid fhir-r4 dialect: identifier_formats.0",
    ),
    (
        "missing key file",
        ADDED_SOURCE.replace(
            'type = "bearer"\ntoken = "my-secret-upstream-token"',
            'type = "smart-backend"\ntoken_url = "http://127.0.0.1:18080/token"\n'
            'client_id = "samlad"\nprivate_key_file = "keys/none.pem"',
        ),
        "cannot read private key file",
    ),
    (
        "duplicate ids",
        ADDED_SOURCE + ADDED_SOURCE,
        "duplicate source id 'my-fhir'",
    ),
    (
        "a simulated region's id",
        ADDED_SOURCE.replace('"my-fhir"', '"region-nord"'),
        "source id 'region-nord' is taken by a simulated region (region-nord, region-ost,",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [case[1:] for case in BAD_ADDED_SOURCES],
    ids=[case[0] for case in BAD_ADDED_SOURCES],
)
def test_a_bad_add_sources_file_gets_one_line_and_nothing_starts(
    body: str | None, message: str, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if body is not None:
        (elsewhere / "sources.toml").write_text(body, encoding="utf-8")
    code, out, err = run(["demo", "--add-sources", "sources.toml"], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("samlad: error: --add-sources sources.toml: "), err
    assert message in err
    assert "Traceback" not in err
    assert "my-secret-upstream-token" not in err
    assert not (elsewhere / ".samlad").exists()


def test_add_sources_names_a_folder(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (elsewhere / "sources").mkdir()
    code, _, err = run(["demo", "--add-sources", "sources"], capsys)
    assert (code, err) == (2, "samlad: error: --add-sources sources: not a file\n")


def test_the_commands_find_the_demos_configuration_in_its_folder(tmp_path: Path) -> None:
    """Run as the README says, where the demo runs: no --config needed."""
    demo_folder(tmp_path)
    for argv, says in (
        (["migrate"], "database schema is current"),
        (["audit", "verify"], "audit log OK"),
        (["cache", "purge"], "removed 0 expired cache entries"),
    ):
        done = subprocess.run(
            [str(SAMLAD), *argv],
            cwd=tmp_path,
            env=demo_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert says in done.stdout
        assert "Traceback" not in done.stderr


def test_samlad_config_names_the_file_from_anywhere(
    elsewhere: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = demo_folder(tmp_path / "demo")
    monkeypatch.setenv("SAMLAD_CONFIG", str(config))
    assert run(["migrate"], capsys)[:2] == (0, "database schema is current\n")
    monkeypatch.setenv("SAMLAD_CONFIG", str(tmp_path / "gone.toml"))
    code, _, err = run(["migrate"], capsys)
    assert (code, err) == (2, f"samlad: error: no configuration file at {tmp_path / 'gone.toml'}\n")


def test_token_writes_the_personnummer_in_the_form_the_gateway_accepts(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = demo_folder(elsewhere)
    code, out, err = run(["token", "--role", "citizen", "--personnummer", "19121212-1212"], capsys)
    assert code == 0, err
    keys = KeySet.import_key_set(
        orjson.loads((config.parent / "dev-issuer/jwks.json").read_bytes())
    )
    claims = jwt.decode(out.strip(), keys).claims
    assert claims["personnummer"] == "191212121212"
    assert claims["iss"] == "http://127.0.0.1:18000/dev-issuer"
    assert claims["exp"] - claims["iat"] == 3600


def documented_toml(document: str, holding: str) -> str:
    """The ```` ```toml ```` block of ``document`` that holds ``holding``."""
    text = (REPO / document).read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"^```toml\n(.*?)^```$", text, re.M | re.S) if holding in b]
    return str(block)


async def _answers_with(settings: Settings, tokens: list[str]) -> list[int]:
    """The statuses a gateway with ``settings`` gives a citizen's Patient search with each token."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            return [
                (
                    await client.post(
                        "/fhir/Patient/_search",
                        data={"identifier": f"{PERSONNUMMER_SYSTEM}|191212121212"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                ).status_code
                for token in tokens
            ]


def test_samlad_token_works_with_a_configuration_written_as_documented(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/configuration.md's development issuer, written by hand: no demo, no keys made
    beforehand. `samlad token` makes the key pair and a gateway on the file believes it."""
    config = elsewhere / "dev.toml"
    config.write_text(
        documented_toml("docs/configuration.md", "dev_signing_key_file"), encoding="utf-8"
    )
    tokens = []
    for role in (["citizen", "--personnummer", "19121212-1212"], ["clinician"], ["integrator"]):
        code, out, err = run(["token", "--config", "dev.toml", "--role", *role], capsys)
        assert (code, err) == (0, "")
        tokens.append(out.strip())
    assert sorted(p.name for p in (elsewhere / "dev-issuer").iterdir()) == [
        "jwks.json",
        "signing-key.jwk.json",
    ]
    settings = load_settings(config)
    assert asyncio.run(_answers_with(settings, [tokens[0], tokens[0][:-4] + "AAAA"])) == [200, 401]
    keys = KeySet.import_key_set(orjson.loads((elsewhere / "dev-issuer/jwks.json").read_bytes()))
    assert [jwt.decode(token, keys).claims["scope"] for token in tokens] == [
        CITIZEN_SCOPE,
        "user/*.rs",
        "system/*.rs",
    ]
    staff = [
        "token",
        "--config",
        "dev.toml",
        "--role",
        "clinician",
        "--scope",
        "user/*.rs user/Consent.cu",
    ]
    code, out, _ = run(staff, capsys)
    assert code == 0
    assert jwt.decode(out.strip(), keys).claims["scope"] == "user/*.rs user/Consent.cu"


def test_samlad_token_says_what_a_configuration_lacks(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documented = documented_toml("docs/configuration.md", "dev_signing_key_file")
    without_key = "\n".join(
        line for line in documented.splitlines() if not line.startswith("dev_signing_key_file")
    )
    (elsewhere / "dev.toml").write_text(without_key, encoding="utf-8")
    code, _, err = run(["token", "--config", "dev.toml", "--role", "clinician"], capsys)
    assert code == 2
    assert "an [[issuers]] entry with dev_signing_key_file, see docs/configuration.md" in err
    (elsewhere / "dev.toml").write_text(documented, encoding="utf-8")
    (elsewhere / "dev-issuer").mkdir()
    (elsewhere / "dev-issuer/signing-key.jwk.json").write_text("-----BEGIN PRIVATE KEY-----")
    code, _, err = run(["token", "--config", "dev.toml", "--role", "clinician"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "is not an ES256 private key in JWK form" in err
    assert "BEGIN" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert (code, out) == (0, f"samlad {__version__}\n")


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_has_help_and_shows_its_default() -> None:
    parsers = list(_parsers(build_parser()))
    assert {p.prog for p in parsers} >= {
        "samlad demo",
        "samlad serve",
        "samlad token",
        "samlad migrate",
        "samlad audit verify",
        "samlad cache purge",
    }
    for parser in parsers:
        shown = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (parser.prog, action.dest)
            if action.default not in (None, argparse.SUPPRESS):
                assert f"(default: {action.default}" in shown, (parser.prog, action.dest)
            elif action.option_strings and not action.required:
                assert "default:" in action.help or "required" in action.help, action.dest


def _venv(folder: Path, *, script: bool = True) -> Path:
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("")
    if script:
        (bin_dir / "samlad").write_text("")
    return bin_dir


def test_the_banner_names_a_samlad_that_runs_where_the_demo_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = _venv(tmp_path / "project")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "/nowhere")
    monkeypatch.chdir(tmp_path / "project")
    assert samlad_command() == ".venv/bin/samlad"  # as from `make demo`
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert samlad_command() == str(bin_dir / "samlad")  # from elsewhere: the whole path
    (bin_dir / "samlad").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert samlad_command() == "samlad"  # an activated environment


def test_without_a_samlad_script_the_banner_names_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = _venv(tmp_path, script=False)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    assert samlad_command() == f"{bin_dir / 'python'} -m gateway.run.cli"
