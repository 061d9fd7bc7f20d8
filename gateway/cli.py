"""The ``samlad`` command: demo, serve, token, migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.settings import ConfigError, load_settings
from gateway.workers import positive, serve

if TYPE_CHECKING:
    from fastapi import FastAPI

DEFAULT_DATA_DIR = Path(".samlad")
#: Read everything of one's own; create and withdraw consents and blocks.
CITIZEN_SCOPE = "patient/*.rs patient/Consent.cu"


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs full request URLs at INFO; upstream queries may carry identifiers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(args.data_dir, args.port, args.region_port_base))
    print("Samlad demo stopped.")
    return 0


#: Names the configuration file of ``samlad serve --workers N`` for each worker process.
CONFIG_FILE_VARIABLE = "SAMLAD_CONFIG_FILE"
#: The log level each worker process of ``samlad serve --workers N`` logs at.
LOG_LEVEL_VARIABLE = "SAMLAD_LOG_LEVEL"


def app_from_environment() -> FastAPI:
    """uvicorn ``--factory`` entry point of a worker: the gateway for the configuration
    file named by ``SAMLAD_CONFIG_FILE`` (SAMLAD_* variables override it as usual)."""
    from gateway.app import create_app

    _configure_logging(os.environ.get(LOG_LEVEL_VARIABLE, "INFO"))
    config = os.environ.get(CONFIG_FILE_VARIABLE)
    return create_app(load_settings(Path(config) if config else None))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.workers == 1:
        import uvicorn

        from gateway.app import create_app

        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=False,  # our own request log leaves out paths and queries
            log_level=args.log_level.lower(),
        )
        return 0
    # Several processes: migrate once here, so the workers do not race to do it.
    if settings.should_auto_migrate:
        from gateway.store.migrate import upgrade

        upgrade(settings.effective_database_url)
    os.environ[CONFIG_FILE_VARIABLE] = str(args.config.resolve())
    os.environ[LOG_LEVEL_VARIABLE] = args.log_level
    os.environ["SAMLAD_AUTO_MIGRATE"] = "false"
    return serve(
        "gateway.cli:app_from_environment",
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=args.log_level,
    )


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.demo import dev_token

    config = args.config or DEFAULT_DATA_DIR / "demo.toml"
    if not config.exists():
        print(f"no configuration at {config}: start `samlad demo` first", file=sys.stderr)
        return 2
    settings = load_settings(config)
    claims: dict[str, str]
    if args.role == "citizen":
        if not args.personnummer:
            print("--personnummer is required for a citizen token", file=sys.stderr)
            return 2
        claims = {"personnummer": args.personnummer, "scope": CITIZEN_SCOPE}
    elif args.role == "clinician":
        claims = {
            "hsa_id": args.hsa_id,
            "care_unit_hsa_id": args.care_unit,
            "care_provider_hsa_id": args.care_provider,
            "scope": "user/*.rs",
        }
    else:
        claims = {
            "client_id": args.client_id,
            "care_provider_hsa_id": args.care_provider,
            "scope": "system/*.rs",
        }
    print(dev_token(settings, claims, lifetime=args.lifetime))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from gateway.store.migrate import upgrade

    settings = load_settings(args.config)
    upgrade(settings.effective_database_url)
    print("database schema is current")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from consent.checkpoints import CheckpointKey, verify_command

    settings = load_settings(args.config)
    key = CheckpointKey.from_hex(settings.audit_checkpoint_key.get_secret_value())
    checkpoint_file = args.checkpoints or settings.effective_audit_checkpoint_file
    return asyncio.run(
        verify_command(settings.effective_database_url, key.verify_key, checkpoint_file)
    )


def cmd_cache_purge(args: argparse.Namespace) -> int:
    from gateway.cache import RecordCache
    from gateway.store.db import Database

    settings = load_settings(args.config)

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samlad", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the simulated regions and the gateway")
    demo.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--region-port-base", type=int, default=8101)
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="run the gateway from a configuration file")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument(
        "--workers", type=positive, default=1, help="server processes (each with its own memory)"
    )
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="print a token from the local development issuer")
    token.add_argument("--config", type=Path, default=None)
    token.add_argument("--role", choices=["citizen", "clinician", "integrator"], required=True)
    token.add_argument("--personnummer")
    token.add_argument("--hsa-id", default="SE2321009001-DOC1")
    token.add_argument("--care-unit", default="SE2321009001-MEDM")
    token.add_argument("--care-provider", default="SE2321009001-NORD")
    token.add_argument("--client-id", default="demo-integrator")
    token.add_argument("--lifetime", type=int, default=3600)
    token.set_defaults(func=cmd_token)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--config", type=Path, default=None)
    migrate.set_defaults(func=cmd_migrate)

    audit = sub.add_parser("audit", help="the access log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain; exit 1 on any break")
    verify.add_argument("--config", type=Path, default=None)
    verify.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="checkpoint file to verify against (default: audit_checkpoint_file)",
    )
    verify.set_defaults(func=cmd_audit_verify)

    cache = sub.add_parser("cache", help="the cache of normalised data")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    purge = cache_sub.add_parser("purge", help="remove data past its retention now")
    purge.add_argument("--config", type=Path, default=None)
    purge.set_defaults(func=cmd_cache_purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
