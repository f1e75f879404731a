"""In front of a real two-node nats-server cluster, clients of the sidecar never learn the peers'
addresses (connect_urls), neither from the first INFO nor from the INFO the server pushes when the
cluster changes, so they cannot reconnect around the sidecar. Everything else in INFO is unchanged.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import nats
import pytest

from evmesh.runtime.ports import free_port
from natsutil import ConfiguredNats, RawNats

LISTENER = "cluster"
CONNECT_V1 = b'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n'  # protocol 1: async INFO updates


def node_conf(name: str, own: int, peer: int) -> str:
    return f'server_name: {name}\ncluster {{ name: c1, listen: "127.0.0.1:{own}", routes: ["nats://127.0.0.1:{peer}"] }}'


@pytest.fixture(scope="module")
def route_ports():
    return free_port(), free_port()


@pytest.fixture(scope="module")
def node_a(tmp_path_factory, route_ports):
    a, b = route_ports
    server = ConfiguredNats(tmp_path_factory.mktemp("node-a"), node_conf("a", a, b))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mesh(start_sidecar, node_a):
    return start_sidecar({LISTENER: {}}, broker_address=f"127.0.0.1:{node_a.port}")


def without(info: dict, *keys: str) -> dict:
    return {k: v for k, v in info.items() if k not in keys}


async def next_info(raw: RawNats, timeout: float = 5.0) -> dict:
    """The next INFO the server pushes (PINGs are answered and skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        line = await raw.read_line(max(0.01, deadline - time.monotonic()))
        if line == b"PING\r\n":
            await raw.send(b"PONG\r\n")
        elif line.startswith(b"INFO "):
            return json.loads(line[5:])


async def test_connect_urls_never_reach_clients(tmp_path_factory, mesh, node_a, route_ports):
    # Connected while node a is alone.
    early = await RawNats.connect(mesh.listener_port(LISTENER), CONNECT_V1)
    early_direct = await RawNats.connect(node_a.port, CONNECT_V1)
    stop: list[ConfiguredNats] = []
    a_route, b_route = route_ports
    try:
        for raw in (early, early_direct):  # CONNECT handled: both get cluster updates
            assert all(line.startswith(b"INFO {") for line in await raw.ping())
        node_b = ConfiguredNats(tmp_path_factory.mktemp("node-b"), node_conf("b", b_route, a_route))
        stop.append(node_b)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{node_a.monitor_port}/routez", timeout=2) as resp:
                if json.loads(resp.read())["num_routes"] >= 1:
                    break
            await asyncio.sleep(0.05)

        # The update the server pushes when b joins: the direct client learns b's address, ours does not.
        pushed_direct = await next_info(early_direct)
        while "connect_urls" not in pushed_direct:
            pushed_direct = await next_info(early_direct)
        assert f"127.0.0.1:{node_b.port}" in pushed_direct["connect_urls"]
        pushed = await next_info(early)
        while pushed.get("connect_info"):
            pushed = await next_info(early)
        assert without(pushed, "client_id") == without(pushed_direct, "client_id", "connect_urls")

        # A client connecting now: its first INFO has no connect_urls either.
        late = await RawNats.connect(mesh.listener_port(LISTENER), None)
        late_direct = await RawNats.connect(node_a.port, None)
        await late.close()
        await late_direct.close()
        assert "connect_urls" in late_direct.info
        assert without(late.info, "client_id") == without(late_direct.info, "client_id", "connect_urls")

        # nats-py discovers no server beyond the sidecar.
        nc = await nats.connect(f"nats://127.0.0.1:{mesh.listener_port(LISTENER)}", allow_reconnect=False)
        direct = await nats.connect(f"nats://127.0.0.1:{node_a.port}", allow_reconnect=False)
        try:
            assert nc.discovered_servers == []
            assert direct.discovered_servers, "the direct client does learn the peer"
        finally:
            await nc.close()
            await direct.close()
    finally:
        await early.close()
        await early_direct.close()
        for server in stop:
            server.stop()
