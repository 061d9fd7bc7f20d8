"""``samlad demo --add-sources FILE``: the sources a person adds beside the simulated regions.

FILE holds ``[[sources]]`` entries in the format of the configuration file
(docs/configuration.md). They are read and checked as the gateway checks its own
configuration (the same reader, models and start-up checks) before anything starts, and a
problem ends the command in one line that names FILE.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from adapters.config import SourceConfigError, parse_sources
from adapters.registry import build_auth, check_kinds
from gateway.run.configfile import CommandError
from gateway.settings import ConfigError, read_config_file

#: The tables FILE may hold beside ``[[sources]]``: none.
_OTHER_TABLES = ("issuers", "guardian_registers", "oauth_clients")


def read_added_sources(path: Path, taken_ids: Collection[str]) -> list[dict[str, Any]]:
    """The ``[[sources]]`` entries of ``path``, checked, as the values to write into the
    demo's configuration (relative key files made relative to ``path``).

    Refused: a missing or unreadable file, anything but ``[[sources]]`` in it, no entry at
    all, an entry the gateway would refuse at start-up, and an id in ``taken_ids``.
    """
    where = f"--add-sources {path}"
    if not path.exists():
        raise CommandError(f"{where}: no such file")
    if not path.is_file():
        raise CommandError(f"{where}: not a file")
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise CommandError(f"{where}: {exc}") from exc
    entries: Any = data.pop("sources")
    others = sorted(
        [f"[{name}]" for name in _OTHER_TABLES if data.pop(name)] + (["[gateway]"] if data else [])
    )
    if others:
        raise CommandError(
            f"{where}: only [[sources]] entries belong here, not {', '.join(others)}"
        )
    if not entries:
        raise CommandError(f"{where}: holds no [[sources]] entries")
    try:
        sources = parse_sources({"sources": entries})
        check_kinds(sources)
        for source in sources:
            build_auth(source)  # reads a key file now rather than when the gateway starts
    except SourceConfigError as exc:
        raise CommandError(f"{where}: {exc}") from exc
    for source in sources:
        if source.id in taken_ids:
            raise CommandError(
                f"{where}: source id {source.id!r} is taken by a simulated region "
                f"({', '.join(sorted(taken_ids))}): choose another id"
            )
    checked: list[dict[str, Any]] = entries
    return checked
