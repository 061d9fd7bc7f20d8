"""Running several regions in one event loop, and the command line."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from simregions.__main__ import main
from simregions.behaviour import Behaviour
from simregions.launch import serve_regions
from simregions.regions import DEFAULT_REGIONS, get_region
from simregions.server import bind_socket


@pytest.mark.anyio
async def test_serve_regions_runs_all_three_until_cancelled() -> None:
    sockets = [bind_socket() for _ in DEFAULT_REGIONS]
    ports = [sock.getsockname()[1] for sock in sockets]
    behaviours = [Behaviour() for _ in DEFAULT_REGIONS]
    started = asyncio.Event()
    task = asyncio.create_task(serve_regions(DEFAULT_REGIONS, sockets, behaviours, started=started))
    await asyncio.wait_for(started.wait(), 10)
    async with httpx.AsyncClient() as client:
        for spec, port in zip(DEFAULT_REGIONS, ports, strict=True):
            statement = (await client.get(f"{spec.base_url(port)}/metadata")).json()
            assert statement["publisher"] == spec.name
        behaviours[1].fault = "unavailable-503"
        vast = DEFAULT_REGIONS[1]
        response = await client.get(f"{vast.base_url(ports[1])}/metadata")
        assert response.status_code == 503
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(sock.fileno() == -1 for sock in sockets)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{DEFAULT_REGIONS[0].base_url(ports[0])}/metadata")


@pytest.mark.anyio
async def test_serve_regions_refuses_mismatched_arguments() -> None:
    with pytest.raises(ValueError, match="same length"):
        await serve_regions(DEFAULT_REGIONS, [0])


def test_get_region_lists_the_valid_ids() -> None:
    assert get_region("syd").page_size == 50
    with pytest.raises(KeyError, match="nord, vast, syd"):
        get_region("mitt")


@pytest.mark.parametrize(
    "argv",
    [[], ["--region", "mitt"], ["--all", "--port", "9000"], ["--region", "nord", "--fault", "x"]],
)
def test_command_line_refuses_bad_arguments(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err
