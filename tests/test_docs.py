"""The shell commands in the README and the docs run as written, against a real demo.

The demo is started as the README says, ``make demo`` (with ``ARGS`` for free ports), in a
temporary working folder that has ``.venv/bin/samlad``, and with the quickstart's own FHIR
source added as it says (``--add-sources`` and its ```` ```toml ```` file), played by one
more simulated region started here. Each document's ```` ```sh ```` blocks then run in
order in one bash session, with the values the demo printed put in for ``export
NAME=...`` and its ports for the default ones. Every ``curl`` must answer the HTTP status
the comment line after it states (``# 403: no consent``), and every other command must
succeed.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from simregions.app import create_app as create_region_app
from simregions.regions import DEFAULT_REGIONS
from simregions.server import serve_in_thread
from tests.demo_process import REGION_PORTS, DemoProcess, demo_environment, free_demo_ports

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = "docs/quickstart.md"
DOCUMENTS = ("README.md", QUICKSTART, "docs/consent.md")
#: The ports the docs name: the gateway's, then the regions' (``samlad demo`` defaults).
DEFAULT_PORT, DEFAULT_REGION_PORT_BASE = 8000, 8101
#: Commands the docs show that this test does not run, and why.
NOT_RUN = {
    "make demo": "the test has started the demo itself, as `make demo ARGS=...`",
    "make test": "the whole suite, of which this test is a part",
}
#: bash with every command checked, and each curl's HTTP status written to stderr.
PREAMBLE = """set -euo pipefail
curl() { command curl --max-time 60 -w '%{stderr}HTTP %{http_code}\\n' "$@"; }
"""
STATUS_COMMENT = re.compile(r"^\s*#\s*(\d{3})\b", re.MULTILINE)
SH_BLOCK = re.compile(r"^( *)```sh\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


def sh_blocks(markdown: str) -> list[str]:
    """The ```` ```sh ```` blocks of a Markdown text, each without its list indentation."""
    blocks = []
    for indent, body in SH_BLOCK.findall(markdown):
        lines = body.splitlines()
        assert all(not line.strip() or line.startswith(indent) for line in lines), body
        blocks.append("\n".join(line[len(indent) :] for line in lines) + "\n")
    return blocks


def as_run_against(
    script: str,
    exports: dict[str, str],
    port: int,
    region_base: int,
    other_ports: dict[int, int] | None = None,
) -> str:
    """The script with the demo's printed values and ports put in (``other_ports``: the
    port the docs name for an added source, and its port in the test), not-run commands
    out."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in exports, f"the docs export {name}=..., which the demo does not print"
        return f"export {name}={exports[name]}"

    ports = {DEFAULT_PORT: port}
    ports |= {DEFAULT_REGION_PORT_BASE + i: region_base + i for i in range(REGION_PORTS)}
    ports |= other_ports or {}

    def moved(match: re.Match[str]) -> str:
        named = int(match.group(1))
        assert named in ports, f"the docs name port {named}, which the demo does not use"
        return f"127.0.0.1:{ports[named]}"

    script = re.sub(r"^export (\w+)=\.\.\.(?=\s|$)", value, script, flags=re.MULTILINE)
    script = re.sub(r"127\.0\.0\.1:(\d+)", moved, script)
    kept = [line for line in script.splitlines() if not line.strip().startswith(tuple(NOT_RUN))]
    return "\n".join(kept) + "\n"


@dataclass(frozen=True)
class AddedSource:
    """The quickstart's recipe for a FHIR source of one's own: its file and its server."""

    file_name: str
    toml: str
    source_id: str
    port: int
    token: str


def added_source_recipe() -> AddedSource:
    """The quickstart's ``--add-sources FILE``, FILE's ```` ```toml ```` block, what it names."""
    text = (REPO / QUICKSTART).read_text(encoding="utf-8")
    (toml,) = [
        b for b in re.findall(r"^```toml\n(.*?)^```$", text, re.M | re.S) if "[[sources]]" in b
    ]
    (file_name,) = re.findall(r"--add-sources (\S+?)\"", text)
    (source,) = tomllib.loads(toml)["sources"]
    port = urlsplit(source["base_url"]).port
    assert port is not None
    return AddedSource(file_name, toml, source["id"], port, source["auth"]["token"])


@pytest.fixture(scope="module")
def added_source() -> Iterator[tuple[AddedSource, int]]:
    """The recipe's server, played by a simulated region that knows the test person and
    expects the recipe's token; and its port."""
    recipe = added_source_recipe()
    stand_in = dataclasses.replace(DEFAULT_REGIONS[0], token=recipe.token)
    with serve_in_thread(create_region_app(stand_in)) as server:
        yield recipe, server.port


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, added_source: tuple[AddedSource, int]
) -> Iterator[DemoProcess]:
    recipe, added_port = added_source
    samlad = Path(sys.executable).parent / "samlad"
    assert samlad.is_file(), f"samlad is not installed beside {sys.executable}"
    make = shutil.which("make")
    assert make is not None, "make is not installed"
    work = tmp_path_factory.mktemp("docs")
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "bin" / "samlad").symlink_to(samlad)
    moved = recipe.toml.replace(f"127.0.0.1:{recipe.port}/", f"127.0.0.1:{added_port}/")
    (work / recipe.file_name).write_text(moved, encoding="utf-8")
    port, region_base = free_demo_ports()
    command = [
        make,
        "--no-print-directory",
        "-f",
        str(REPO / "Makefile"),
        # The working folder's .venv is this one's samlad alone: do not install into it.
        "-o",
        ".venv/.installed",
        "demo",
        f"ARGS=--port {port} --region-port-base {region_base} --add-sources {recipe.file_name}",
    ]
    running = DemoProcess(command, work)
    try:
        yield running
    finally:
        running.stop()


def run_document(demo: DemoProcess, document: str, added: tuple[AddedSource, int]) -> None:
    blocks = sh_blocks((REPO / document).read_text(encoding="utf-8"))
    assert blocks, f"{document} has no sh blocks"
    port = int(re.findall(r":(\d+)/", demo.fhir_base_url)[0])
    region_base = int(re.findall(r"nord\s+http://127\.0\.0\.1:(\d+)", demo.banner)[0])
    recipe, added_port = added
    assert f"{recipe.source_id} http://127.0.0.1:{added_port}/" in demo.banner, demo.banner
    script = as_run_against(
        "\n".join(blocks), demo.exports, port, region_base, {recipe.port: added_port}
    )
    expected = [int(code) for code in STATUS_COMMENT.findall(script)]
    done = subprocess.run(
        ["bash", "-c", PREAMBLE + script],
        cwd=demo.cwd,
        env=demo_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    statuses = [int(code) for code in re.findall(r"^HTTP (\d{3})$", done.stderr, re.MULTILINE)]
    output = f"stderr:\n{done.stderr[-3000:]}\nstdout:\n{done.stdout[-1000:]}"
    report = f"{document}:\n{script}\n{output}"
    assert done.returncode == 0, report
    assert statuses == expected, report


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_documents_commands_answer_as_they_say(
    demo: DemoProcess, added_source: tuple[AddedSource, int], document: str
) -> None:
    run_document(demo, document, added_source)


def test_every_command_the_docs_skip_is_named_in_them() -> None:
    """The list of commands not run cannot outlive the commands."""
    text = "".join("".join(sh_blocks((REPO / d).read_text(encoding="utf-8"))) for d in DOCUMENTS)
    for command in NOT_RUN:
        assert re.search(rf"^{re.escape(command)}\b", text, re.MULTILINE), command


def test_the_banners_token_command_works_where_the_demo_runs(demo: DemoProcess) -> None:
    (line,) = [line for line in demo.banner.splitlines() if line.startswith("More tokens:")]
    command = line.removeprefix("More tokens:").split("(")[0].strip()
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=demo.cwd,
        env=demo_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", done.stdout)


def test_the_status_comments_are_read_from_the_blocks() -> None:
    """The parsing the documents' test relies on, on a known text."""
    text = (
        "intro\n\n1. step\n\n   ```sh\n   export TOKEN=...   # printed\n"
        "   curl -s http://127.0.0.1:8000/fhir/metadata\n   # 200: ok\n   ```\n\n"
        "```sh\nmake demo\ncurl -s http://127.0.0.1:8103/_sim/behaviour\n# 401\n```\n"
    )
    blocks = sh_blocks(text)
    assert len(blocks) == 2
    script = as_run_against("".join(blocks), {"TOKEN": "abc"}, 18000, 18101)
    assert "export TOKEN=abc   # printed\n" in script
    assert "http://127.0.0.1:18000/fhir/metadata" in script
    assert "http://127.0.0.1:18103/_sim/behaviour" in script
    assert "make demo" not in script
    assert [int(c) for c in STATUS_COMMENT.findall(script)] == [200, 401]
