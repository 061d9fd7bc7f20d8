"""The ``samlad`` command: demo, serve, token, migrate, audit verify and prune, cache purge.

Every command reads its configuration from ``--config FILE``, else the file named by
``SAMLAD_CONFIG``, else (all but ``serve``) the demo's ``.samlad/demo.toml`` in the working
folder, else ``SAMLAD_*`` variables alone. A bad value or a missing file ends the command
with one line on stderr and exit status 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from consent.scopes import CITIZEN_SCOPE
from fhir_profiles.identifiers import InvalidPersonIdentifier, parse_person_identifier
from gateway import __version__
from gateway.run.configfile import (
    CONFIG_FILE_VARIABLE,
    DEFAULT_DATA_DIR,
    DEMO_CONFIG,
    CommandError,
    settings_for,
)
from gateway.run.logs import configure_logging
from gateway.run.workers import forwarded_options, positive, serve
from gateway.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

#: The log level each worker process of ``samlad serve --workers N`` logs at.
LOG_LEVEL_VARIABLE = "SAMLAD_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad value in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- Option types: each refuses a bad value with a message that says what is expected.


def port(value: str) -> int:
    """An argparse type: a TCP port number, 1 to 65535."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1 to 65535)") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port number (1 to 65535)")
    return number


def log_level(value: str) -> str:
    """An argparse type: a logging level name, in any case."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a log level (one of {', '.join(LOG_LEVELS)})"
        )
    return level


def personnummer(value: str) -> str:
    """An argparse type: a personnummer or samordningsnummer, in canonical 12-digit form.

    The message never repeats the number.
    """
    try:
        return parse_person_identifier(value).value
    except InvalidPersonIdentifier as exc:
        raise argparse.ArgumentTypeError(
            f"not a valid personnummer or samordningsnummer ({exc}); write it as YYYYMMDD-NNNC"
        ) from None


def identifier(value: str) -> str:
    """An argparse type: an HSA-id or client id, one word of 3 to 64 characters."""
    text = value.strip()
    if not 3 <= len(text) <= 64 or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{value!r} is not an id (3 to 64 characters, no spaces)")
    return text


# -- Commands


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.run.demo import check_ports, run_demo, simulated_source_ids
    from gateway.run.demo_sources import read_added_sources

    check_ports(args.port, args.region_port_base)
    if args.data_dir.exists() and not args.data_dir.is_dir():
        raise CommandError(f"--data-dir {args.data_dir} is a file, not a folder")
    added = []
    if args.add_sources is not None:
        added = read_added_sources(args.add_sources, simulated_source_ids())
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_demo(args.data_dir, args.port, args.region_port_base, added))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise CommandError(f"the demo cannot start: {exc.strerror or exc}{where}") from exc
    print("Samlad demo stopped.")
    return 0


def app_from_environment() -> FastAPI:
    """uvicorn ``--factory`` entry point of a worker: the gateway for the configuration
    file named by ``SAMLAD_CONFIG`` (SAMLAD_* variables override it as usual)."""
    from gateway.run.app import create_app

    config = os.environ.get(CONFIG_FILE_VARIABLE)
    settings = load_settings(Path(config) if config else None)
    configure_logging(os.environ.get(LOG_LEVEL_VARIABLE, "INFO"), settings.log_format)
    return create_app(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    config, settings = settings_for(args.config, demo=False)
    configure_logging(args.log_level, settings.log_format)
    if args.workers == 1:
        import uvicorn
        from uvicorn.config import LOGGING_CONFIG

        from gateway.run.app import create_app

        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=False,  # our own request log leaves out paths and queries
            log_level=args.log_level.lower(),
            # JSON: uvicorn's loggers go through ours rather than its own text handlers.
            log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
            **forwarded_options(settings.trusted_proxies),
        )
        return 0
    if settings.dev_authorization_server:
        # Its codes and refresh tokens live in one process's memory.
        raise CommandError("the development authorization server runs in one process: no --workers")
    # Several processes: migrate once here, so the workers do not race to do it.
    if settings.should_auto_migrate:
        from store.migrate import upgrade

        upgrade(settings.effective_database_url)
    if config is not None:
        os.environ[CONFIG_FILE_VARIABLE] = str(config.resolve())
    os.environ[LOG_LEVEL_VARIABLE] = args.log_level
    os.environ["SAMLAD_AUTO_MIGRATE"] = "false"
    return serve(
        "gateway.run.cli:app_from_environment",
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=args.log_level,
        trusted_proxies=settings.trusted_proxies,
    )


def token_claims(args: argparse.Namespace) -> dict[str, str]:
    """The claims of the token ``samlad token`` is asked for."""
    if args.role != "citizen" and args.personnummer is not None:
        raise CommandError("--personnummer is only for --role citizen")
    scope = args.scope
    if args.role == "citizen":
        if args.personnummer is None:
            raise CommandError("--role citizen needs --personnummer YYYYMMDD-NNNC")
        return {"personnummer": args.personnummer, "scope": scope or CITIZEN_SCOPE}
    if args.role == "clinician":
        return {
            "hsa_id": args.hsa_id,
            "care_unit_hsa_id": args.care_unit,
            "care_provider_hsa_id": args.care_provider,
            "scope": scope or "user/*.rs",
        }
    return {
        "client_id": args.client_id,
        "care_provider_hsa_id": args.care_provider,
        "scope": scope or "system/*.rs",
    }


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.run.dev_issuer import dev_token

    claims = token_claims(args)
    _, settings = settings_for(args.config)
    print(dev_token(settings, claims, lifetime=args.lifetime))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from store.migrate import upgrade

    _, settings = settings_for(args.config)
    upgrade(settings.effective_database_url)
    print("database schema is current")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from consent.checkpoints import CheckpointKey
    from consent.verify import verify_command

    _, settings = settings_for(args.config)
    key = CheckpointKey.from_hex(settings.audit_checkpoint_key.get_secret_value())
    checkpoint_file = args.checkpoints or settings.effective_audit_checkpoint_file
    return asyncio.run(
        verify_command(settings.effective_database_url, key.verify_key, checkpoint_file)
    )


def cmd_audit_prune(args: argparse.Namespace) -> int:
    from consent.retention import prune_command
    from gateway.services import checkpointer

    _, settings = settings_for(args.config)
    database_url, days = settings.effective_database_url, settings.audit_retention_days
    return asyncio.run(prune_command(database_url, checkpointer(settings), days))


def cmd_cache_purge(args: argparse.Namespace) -> int:
    from gateway.collect.cache import RecordCache
    from store.db import Database

    _, settings = settings_for(args.config)

    async def purge() -> int:
        db = Database(settings.effective_database_url)
        try:
            cache = RecordCache(
                db,
                settings.data_key.get_secret_value(),
                timedelta(hours=settings.cache_retention_hours),
            )
            return await cache.purge()
        finally:
            await db.dispose()

    print(f"removed {asyncio.run(purge())} expired cache entries")
    return 0


# -- The parser

CONFIG_HELP = (
    f"the configuration file (default: ${CONFIG_FILE_VARIABLE}, else {DEMO_CONFIG} in the "
    "working folder, else SAMLAD_* variables alone)"
)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help=CONFIG_HELP)


class _Commands:
    """The sub-commands of one parser; each takes the options common to all of them."""

    def __init__(self, parser: _Parser, dest: str, common: _Parser) -> None:
        self.subs = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND")
        self.common = common

    def add(self, name: str, help: str) -> _Parser:
        return self.subs.add_parser(name, help=help, description=help, parents=[self.common])


def build_parser() -> argparse.ArgumentParser:
    """The ``samlad`` command line: its own options and one parser per sub-command."""
    # --log-level is accepted before the command and after it; the later one wins.
    common = _Parser(add_help=False)
    common.add_argument(
        "--log-level",
        type=log_level,
        default=argparse.SUPPRESS,
        metavar="LEVEL",
        help=f"log level: {', '.join(LOG_LEVELS)} (default: INFO)",
    )
    parser = _Parser(
        prog="samlad",
        description="Samlad, one FHIR R4 view of health records held by many regional systems.",
    )
    parser.add_argument("--version", action="version", version=f"samlad {__version__}")
    parser.add_argument(
        "--log-level",
        type=log_level,
        default="INFO",
        metavar="LEVEL",
        help=f"log level: {', '.join(LOG_LEVELS)} (default: %(default)s)",
    )
    commands = _Commands(parser, "command", common)
    _add_demo(commands)
    _add_serve(commands)
    _add_token(commands)
    _add_migrate(commands)
    _add_audit(commands)
    _add_cache(commands)
    return parser


def _add_demo(commands: _Commands) -> None:
    demo = commands.add("demo", "run four simulated regions and the gateway, on 127.0.0.1")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help="where the demo writes its configuration, keys and database (default: %(default)s)",
    )
    demo.add_argument(
        "--port", type=port, default=8000, help="the gateway's port (default: %(default)s)"
    )
    demo.add_argument(
        "--region-port-base",
        type=port,
        default=8101,
        metavar="PORT",
        help="the first of the four regions' consecutive ports (default: %(default)s)",
    )
    demo.add_argument(
        "--add-sources",
        type=Path,
        default=None,
        metavar="FILE",
        help="a TOML file of [[sources]] entries (docs/configuration.md) the gateway asks "
        "beside the simulated regions (default: none)",
    )
    demo.set_defaults(func=cmd_demo)


def _add_serve(commands: _Commands) -> None:
    serve_ = commands.add("serve", "run the gateway from a configuration file")
    serve_.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"the configuration file (default: ${CONFIG_FILE_VARIABLE}, else SAMLAD_* "
        "variables alone; never the demo's file unless named)",
    )
    serve_.add_argument(
        "--workers",
        type=positive,
        default=1,
        metavar="N",
        help="server processes, each with its own memory (default: %(default)s)",
    )
    serve_.set_defaults(func=cmd_serve)


def _add_token(commands: _Commands) -> None:
    token = commands.add(
        "token",
        "print a token from the local development issuer of a dev-mode configuration: the "
        "demo's, or an [[issuers]] entry with dev_signing_key_file (docs/configuration.md)",
    )
    _add_config(token)
    token.add_argument(
        "--role",
        choices=["citizen", "clinician", "integrator"],
        required=True,
        help="who the token is for (required)",
    )
    token.add_argument(
        "--personnummer",
        type=personnummer,
        default=None,
        metavar="NUMBER",
        help="the citizen's personnummer, YYYYMMDD-NNNC (required for --role citizen)",
    )
    token.add_argument(
        "--hsa-id",
        type=identifier,
        default="SE2321009001-DOC1",
        metavar="HSA_ID",
        help="the clinician's HSA-id (default: %(default)s)",
    )
    token.add_argument(
        "--care-unit",
        type=identifier,
        default="SE2321009001-MEDM",
        metavar="HSA_ID",
        help="the clinician's care unit (default: %(default)s, Region Nord's Medicinmottagningen)",
    )
    token.add_argument(
        "--care-provider",
        type=identifier,
        default="SE2321009001-NORD",
        metavar="HSA_ID",
        help="the clinician's or integrator's care provider (default: %(default)s, Region Nord)",
    )
    token.add_argument(
        "--client-id",
        type=identifier,
        default="demo-integrator",
        metavar="ID",
        help="the integrator's client id (default: %(default)s)",
    )
    token.add_argument(
        "--scope",
        default=None,
        metavar="SCOPES",
        help="the token's SMART scopes, space-separated (default: the role's usual ones: "
        f'"{CITIZEN_SCOPE}", "user/*.rs" or "system/*.rs"; care staff who set guardian '
        'blocks need "user/*.rs user/Consent.cu")',
    )
    token.add_argument(
        "--lifetime",
        type=positive,
        default=3600,
        metavar="SECONDS",
        help="how long the token is valid (default: %(default)s)",
    )
    token.set_defaults(func=cmd_token)


def _add_migrate(commands: _Commands) -> None:
    migrate = commands.add("migrate", "bring the database schema up to date")
    _add_config(migrate)
    migrate.set_defaults(func=cmd_migrate)


def _add_audit(commands: _Commands) -> None:
    audit = _Commands(commands.add("audit", "the access log"), "audit_command", commands.common)
    prune = audit.add(
        "prune", "remove entries older than audit_retention_days, after a signed checkpoint"
    )
    _add_config(prune)
    prune.set_defaults(func=cmd_audit_prune)
    verify = audit.add(
        "verify", "check the hash chain against the signed checkpoints; exit 1 on any break"
    )
    _add_config(verify)
    verify.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="checkpoint file to verify against (default: the audit_checkpoint_file setting)",
    )
    verify.set_defaults(func=cmd_audit_verify)


def _add_cache(commands: _Commands) -> None:
    cache = commands.add("cache", "the cache of normalised data")
    purge = _Commands(cache, "cache_command", commands.common).add(
        "purge", "remove data past its retention now"
    )
    _add_config(purge)
    purge.set_defaults(func=cmd_cache_purge)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"samlad: configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"samlad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
