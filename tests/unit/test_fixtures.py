"""The pytest fixtures against real nats-server, real Envoy and a real NATS client."""

from __future__ import annotations

import os

import nats

from evmesh.runtime.ports import accepts_tcp


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0): check its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_free_port(free_port):
    a, b = free_port(), free_port()
    assert 0 < a < 65536 and 0 < b < 65536 and not accepts_tcp(a)


async def test_nats_server_fixture(nats_server):
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="T", subjects=["t.>"])
    ack = await js.publish("t.1", b"x")
    assert ack.stream == "T"
    await nc.close()


def spec(free_port, **nats_options):
    return {
        "version": 1,
        "admin": {"port": 0},
        "brokers": [{"name": "nats-main", "protocol": "nats"}],
        "listeners": [{"name": "orders", "protocol": "nats", "port": free_port(), "broker": "nats-main",
                       "nats": nats_options}],
    }


async def test_envoy_for_spec_pub_sub_and_stats(envoy_for_spec, free_port):
    mesh = envoy_for_spec(spec(free_port, acl={"publish": {"deny": ["orders.secret.>"]}},
                               subjects=[{"name": "orders", "pattern": "orders.>"}]))
    assert mesh.admin_url.startswith("http://127.0.0.1:")
    before = mesh.stats()
    nc = await nats.connect(f"nats://127.0.0.1:{mesh.listener_port('orders')}")
    sub = await nc.subscribe("orders.new")
    await nc.publish("orders.new", b"hello")
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"hello"
    await nc.close()
    after = mesh.stats()
    prefix = "evmesh.nats.orders."
    delta = {k: after[k] - before.get(k, 0) for k in after if k.startswith(prefix)}
    assert delta[prefix + "connections_total"] == 1, delta
    assert delta[prefix + "subject.orders.published_msgs"] == 1, delta
    assert delta[prefix + "subject.orders.delivered_msgs"] == 1, delta
    assert "Dynamic module ABI version v0.2.0 matched." in mesh.log_text()


def test_two_meshes_at_once_and_stop_by_pid(envoy_for_spec, free_port):
    first = envoy_for_spec(spec(free_port))
    second = envoy_for_spec(spec(free_port))
    assert first.admin_url != second.admin_url
    pids = first.pids() + second.pids()
    assert len(set(pids)) == 4
    first.stop()
    assert all(_gone(p) for p in pids[:2])
    assert not accepts_tcp(first.listener_port("orders"))
    assert accepts_tcp(second.listener_port("orders"))
