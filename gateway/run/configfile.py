"""Where a command finds its configuration: ``--config FILE``, else the file named by
``SAMLAD_CONFIG``, else (all but ``serve``) the demo's ``.samlad/demo.toml`` in the
working folder, else ``SAMLAD_*`` variables alone; and the one-line error a command
ends with.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.settings import Settings, load_settings

DEFAULT_DATA_DIR = Path(".samlad")
#: The file ``samlad demo`` writes, and where the other commands look for it.
DEMO_CONFIG = DEFAULT_DATA_DIR / "demo.toml"
#: Names the configuration file when ``--config`` is not given; ``samlad serve --workers N``
#: hands it on to each worker process the same way.
CONFIG_FILE_VARIABLE = "SAMLAD_CONFIG"
NO_CONFIG = (
    "no configuration found: run this in the folder where `samlad demo` runs (it writes "
    f"{DEMO_CONFIG}), or pass --config FILE (or set {CONFIG_FILE_VARIABLE}=FILE)"
)
NO_SERVE_CONFIG = (
    f"samlad serve needs a configuration file: pass --config FILE (or set "
    f"{CONFIG_FILE_VARIABLE}=FILE); `samlad demo` writes an example to {DEMO_CONFIG}"
)


class CommandError(Exception):
    """A command cannot do what was asked; the message says why and what to do, in one line."""


def find_config(explicit: Path | None, *, demo: bool = True) -> Path | None:
    """The configuration file a command reads: ``--config``, else ``SAMLAD_CONFIG``, else
    (with ``demo``) the demo's file in the working folder; None when there is none."""
    named = explicit
    if named is None and os.environ.get(CONFIG_FILE_VARIABLE):
        named = Path(os.environ[CONFIG_FILE_VARIABLE])
    if named is not None:
        if not named.is_file():
            raise CommandError(f"no configuration file at {named}")
        return named
    if demo and DEMO_CONFIG.is_file():
        return DEMO_CONFIG
    return None


def _configured_by_environment() -> bool:
    return any(f"SAMLAD_{name.upper()}" in os.environ for name in Settings.model_fields)


def settings_for(explicit: Path | None, *, demo: bool = True) -> tuple[Path | None, Settings]:
    """The file found (if any) and the settings from it and the environment."""
    config = find_config(explicit, demo=demo)
    if config is None and not _configured_by_environment():
        raise CommandError(NO_CONFIG if demo else NO_SERVE_CONFIG)
    return config, load_settings(config)
