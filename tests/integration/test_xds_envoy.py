"""The ADS server end to end: a real Envoy (with the evmesh module) managed only over ADS, a real
nats-server behind it, nats-py clients through the listeners.

Initial config, an update (ACL change + a new listener), a push the module rejects (Envoy NACKs, the
reason is logged, nothing is resent, the old listener keeps serving), a restart of the server (Envoy
keeps serving and resyncs), and `evmesh xds serve` following edits of its spec file.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from evmesh.render.bootstrap import render_ads_yaml
from evmesh.runtime.envoy import Envoy
from evmesh.runtime.nats import NatsServer
from evmesh.runtime.ports import free_port, wait_until
from evmesh.runtime.process import ManagedProcess
from evmesh.spec import NatsOptions, Spec, load_spec_data
from evmesh.xds import LISTENER_TYPE, BackgroundXdsServer, snapshot_from_spec

NODE_CLUSTER = "evmesh"
BROKER = "nats-main"


def spec_dict(broker: NatsServer, listeners: dict[str, tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "version": 1,
        "admin": {"port": 0},
        "brokers": [{"name": BROKER, "protocol": "nats", "address": broker.address}],
        "listeners": [
            {"name": name, "protocol": "nats", "port": port, "broker": BROKER, "nats": options}
            for name, (port, options) in listeners.items()
        ],
    }


def acl(*allow: str) -> dict[str, Any]:
    return {"acl": {"publish": {"allow": list(allow)}}}


class Errors:
    def __init__(self):
        self.seen: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc))


async def publish_outcome(port: int, broker: NatsServer, subject: str, nc=None, errors: Errors | None = None) -> str:
    """"delivered" when a publish through the sidecar reaches nats-server, else the -ERR nats-py saw."""
    own = nc is None
    if own:
        errors = Errors()
        nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, error_cb=errors.record)
    direct = await nats.connect(broker.url, allow_reconnect=False)
    try:
        seen_before = len(errors.seen)
        sub = await direct.subscribe(subject)
        await direct.flush()
        await nc.publish(subject, b"x")
        await nc.flush()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if sub.pending_msgs:
                return "delivered"
            if len(errors.seen) > seen_before:
                return errors.seen[-1]
            await asyncio.sleep(0.02)
        return "nothing"
    finally:
        await direct.close()
        if own:
            await nc.close()


async def eventually(port: int, broker: NatsServer, subject: str, expected: str, timeout: float = 15.0) -> str:
    """publish_outcome until it is `expected`: an ACKed LDS update reaches Envoy's workers a moment
    later (a new listener is bound, a changed one warmed and swapped in after the ACK)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            last = await publish_outcome(port, broker, subject)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            last = f"connect failed: {exc!r}"
        if last == expected or time.monotonic() > deadline:
            return last
        await asyncio.sleep(0.1)


class XdsSidecar:
    """Envoy started on an ADS-only bootstrap pointing at `port`."""

    def __init__(self, work: Path, xds_port: int, api: str, spec: Spec):
        self.admin_port = free_port()
        cfg = work / "envoy.yaml"
        cfg.write_text(render_ads_yaml(spec, f"127.0.0.1:{xds_port}", "sidecar-1", NODE_CLUSTER, api,
                                       admin_port=self.admin_port))
        self.envoy = Envoy(cfg, self.admin_port, [x.port for x in spec.listeners], work / "envoy.log")

    def stats(self) -> dict[str, int]:
        return self.envoy.stats()


@pytest.fixture
def xds_server() -> Iterator[BackgroundXdsServer]:
    server = BackgroundXdsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_sidecar(tmp_path: Path):
    started: list[XdsSidecar] = []

    def start(xds_port: int, api: str, spec: Spec) -> XdsSidecar:
        sidecar = XdsSidecar(tmp_path, xds_port, api, spec)
        started.append(sidecar)
        sidecar.envoy.wait_ready()
        return sidecar

    yield start
    for s in started:
        s.envoy.stop()


def publish(server: BackgroundXdsServer, spec: Spec, label: str) -> None:
    server.set_snapshot(NODE_CLUSTER, snapshot_from_spec(spec, label))


def synced(server: BackgroundXdsServer, label: str, since: int = 0, timeout: float = 30):
    return server.wait_for(lambda e: e.kind == "synced" and e.label == label, timeout, since)


@pytest.mark.parametrize("api", ["sotw", "delta"])
async def test_initial_config_then_acl_change_and_a_new_listener(api, broker, xds_server, start_sidecar):
    orders, billing = free_port(), free_port()
    spec1 = load_spec_data(spec_dict(broker, {"orders": (orders, acl("orders.>"))}))
    publish(xds_server, spec1, "1")
    sidecar = start_sidecar(xds_server.port, api, spec1)
    synced(xds_server, "1")
    assert await publish_outcome(orders, broker, "orders.new") == "delivered"
    assert await publish_outcome(orders, broker, "billing.x") == 'nats: permissions violation for publish to "billing.x"'

    # a connection that stays open across the update
    errors = Errors()
    long_lived = await nats.connect(f"nats://127.0.0.1:{orders}", allow_reconnect=False, error_cb=errors.record)
    try:
        mark = xds_server.mark()
        spec2 = load_spec_data(spec_dict(broker, {
            "orders": (orders, acl("orders.>", "billing.>")),
            "billing": (billing, acl("billing.>")),
        }))
        publish(xds_server, spec2, "2")
        synced(xds_server, "2", mark)
        sent = [e for e in xds_server.events[mark:] if e.kind == "sent"]
        assert [e.type_url.rsplit(".", 1)[-1] for e in sent] == ["Listener"], "CDS unchanged: only LDS is pushed"
        assert wait_until(lambda: sidecar.stats().get("listener_manager.total_listeners_active") == 2, 10)
        # new connections see the new policy, and the new listener serves
        assert await eventually(orders, broker, "billing.x", "delivered") == "delivered"
        assert await eventually(billing, broker, "billing.y", "delivered") == "delivered"
        assert await publish_outcome(billing, broker, "orders.y") == 'nats: permissions violation for publish to "orders.y"'
        # An LDS update does not reach an open connection: Envoy keeps it on the old filter chain until
        # --drain-time-s (platform.md §7). Policy on open connections is the live-policy work (issue 5 item 4).
        assert long_lived.is_connected
        old = await publish_outcome(orders, broker, "billing.z", nc=long_lived, errors=errors)
        assert old == 'nats: permissions violation for publish to "billing.z"'
    finally:
        await long_lived.close()
    stats = sidecar.stats()
    assert stats["listener_manager.lds.update_rejected"] == 0 and stats["cluster_manager.cds.update_rejected"] == 0


async def test_rejected_push_is_logged_not_resent_and_the_old_listener_serves(broker, xds_server, start_sidecar, caplog):
    caplog.set_level("INFO", "evmesh.xds")
    orders, billing = free_port(), free_port()
    spec1 = load_spec_data(spec_dict(broker, {"orders": (orders, acl("orders.>")), "billing": (billing, acl("billing.>"))}))
    publish(xds_server, spec1, "1")
    sidecar = start_sidecar(xds_server.port, "sotw", spec1)
    synced(xds_server, "1")
    # A filter config the module refuses (the spec loader would refuse it first: bypass it on purpose),
    # plus a valid change to the other listener.
    bad_orders = replace(spec1.listeners[0], nats=NatsOptions(max_payload=0))
    new_billing = replace(spec1.listeners[1], nats=NatsOptions(acl=None))
    assert (bad_orders.name, new_billing.name) == ("orders", "billing")
    spec2 = replace(spec1, listeners=(new_billing, bad_orders))
    mark = xds_server.mark()
    publish(xds_server, spec2, "2")
    nack = xds_server.wait_for(lambda e: e.kind == "nack", 30, mark)
    assert nack.type_url == LISTENER_TYPE and nack.label == "2"
    assert "orders" in nack.detail, nack.detail
    assert any("LDS NACK" in r.message and nack.detail in r.message for r in caplog.records)
    assert "max_payload: must be between 1 and 67108864, got 0" in sidecar.envoy.log_text()
    time.sleep(1.5)
    assert [e.kind for e in xds_server.events[mark:] if e.kind in ("sent", "nack")] == ["sent", "nack"], "resent"
    (status,) = xds_server.status()
    assert status["types"]["LDS"]["acked_snapshot"] == "1" and status["types"]["LDS"]["nacked"]
    assert sidecar.stats()["listener_manager.lds.update_rejected"] == 1
    # the old orders listener keeps serving with its old config; Envoy applied the valid part of the push
    assert await publish_outcome(orders, broker, "orders.ok") == "delivered"
    assert await publish_outcome(orders, broker, "billing.no") == 'nats: permissions violation for publish to "billing.no"'
    assert await eventually(billing, broker, "anything.goes", "delivered") == "delivered"
    # a fixed spec goes through
    mark = xds_server.mark()
    publish(xds_server, spec1, "3")
    synced(xds_server, "3", mark)
    denied = 'nats: permissions violation for publish to "anything.goes"'
    assert await eventually(billing, broker, "anything.goes", denied) == denied


@pytest.mark.parametrize("api", ["sotw", "delta"])
async def test_server_restart_envoy_keeps_serving_and_resyncs(api, broker, start_sidecar):
    orders, late = free_port(), free_port()
    port = free_port()
    spec1 = load_spec_data(spec_dict(broker, {"orders": (orders, acl("orders.>"))}))
    first = BackgroundXdsServer()
    first.start(port)
    try:
        publish(first, spec1, "1")
        sidecar = start_sidecar(port, api, spec1)
        synced(first, "1")
    finally:
        first.stop()
    # the control plane is gone: Envoy keeps serving the last config
    assert await publish_outcome(orders, broker, "orders.a") == "delivered"
    time.sleep(0.5)
    assert await publish_outcome(orders, broker, "orders.b") == "delivered"
    second = BackgroundXdsServer()
    second.start(port)
    try:
        # the same content first: Envoy reconnects and nothing needs to be sent again
        publish(second, spec1, "1")
        second.wait_for(lambda e: e.kind == "connected", 60)
        if api == "sotw":
            second.wait_for(lambda e: e.kind == "resumed" and e.type_url == LISTENER_TYPE, 30)
        else:
            second.wait_for(lambda e: e.kind == "ack" and e.type_url == LISTENER_TYPE, 30)
            assert all(e.count == 0 for e in second.events if e.kind == "sent"), "Delta resync resent resources"
        spec2 = load_spec_data(spec_dict(broker, {"orders": (orders, acl("orders.>")), "late": (late, acl(">"))}))
        mark = second.mark()
        publish(second, spec2, "2")
        synced(second, "2", mark)
        assert wait_until(lambda: sidecar.stats().get("listener_manager.total_listeners_active") == 2, 10)
        assert await eventually(late, broker, "late.x", "delivered") == "delivered"
        assert await publish_outcome(orders, broker, "orders.c") == "delivered"
    finally:
        second.stop()


def _wait_log(proc: ManagedProcess, pattern: str, timeout: float = 30.0) -> re.Match:
    rx = re.compile(pattern, re.M)
    found: list[re.Match] = []

    def seen() -> bool:
        m = rx.search(proc.log_text())
        if m:
            found.append(m)
        return bool(m) or not proc.alive()

    assert wait_until(seen, timeout, 0.05) and found, f"{pattern!r} not in log:\n{proc.log_tail()}"
    return found[0]


async def test_evmesh_xds_serve_follows_spec_edits(broker, tmp_path, start_sidecar):
    orders = free_port()
    port = free_port()
    data = spec_dict(broker, {"orders": (orders, acl("orders.>"))})
    spec_path = tmp_path / "mesh.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    evmesh = Path(sys.prefix) / "bin" / "evmesh"
    # --policy-port 0: policies inline in the listeners, so an ACL edit is an LDS update (live policy, where
    # it is not, is tests/integration/test_xds_live_policy.py)
    serve = ManagedProcess("evmesh-xds", [evmesh, "xds", "serve", spec_path, "--port", str(port), "--poll-interval", "0.1",
                                          "--policy-port", "0"],
                           tmp_path / "serve.log", env=dict(os.environ), stop_signal=signal.SIGTERM)
    try:
        _wait_log(serve, r"ADS server on 127\.0\.0\.1:\d+")
        spec1 = load_spec_data(data)
        sidecar = start_sidecar(port, "sotw", spec1)
        _wait_log(serve, r"LDS ACK of version \w+ \(snapshot 1\)")
        assert await publish_outcome(orders, broker, "billing.x") == 'nats: permissions violation for publish to "billing.x"'

        data["listeners"][0]["nats"] = acl("orders.>", "billing.>")
        spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
        _wait_log(serve, r"LDS ACK of version \w+ \(snapshot 2\)")
        assert await eventually(orders, broker, "billing.x", "delivered") == "delivered"

        # a bad edit: reported with its file, line and YAML path, not pushed
        text = spec_path.read_text()
        spec_path.write_text(text.replace("billing.>", "billing..x"))
        line = next(i for i, s in enumerate(spec_path.read_text().splitlines(), 1) if "billing..x" in s)
        m = _wait_log(serve, r"^.*listeners\[0\]\.nats\.acl\.publish\.allow\[1\]: invalid subject pattern.*$")
        assert m.group(0) == f'{spec_path}:{line}: listeners[0].nats.acl.publish.allow[1]: invalid subject pattern "billing..x": empty token'
        _wait_log(serve, r"not pushed; still serving snapshot 2")
        time.sleep(0.3)
        assert "snapshot 3" not in serve.log_text()
        assert await publish_outcome(orders, broker, "billing.x") == "delivered"
        assert sidecar.stats()["listener_manager.lds.update_rejected"] == 0
    finally:
        rc = serve.stop()
    assert rc == 0, serve.log_tail()
    assert "Traceback" not in serve.log_text()


@pytest.mark.parametrize("api", ["sotw", "delta"])
async def test_new_cluster_goes_before_its_listener_and_leaves_after_it(api, broker, xds_server, start_sidecar):
    orders, audit = free_port(), free_port()
    spec1 = load_spec_data(spec_dict(broker, {"orders": (orders, acl("orders.>"))}))
    publish(xds_server, spec1, "1")
    sidecar = start_sidecar(xds_server.port, api, spec1)
    synced(xds_server, "1")

    data = spec_dict(broker, {"orders": (orders, acl("orders.>")), "audit": (audit, acl("audit.>"))})
    data["brokers"].append({"name": "nats-audit", "protocol": "nats", "address": broker.address})
    data["listeners"][1]["broker"] = "nats-audit"
    mark = xds_server.mark()
    publish(xds_server, load_spec_data(data), "2")
    synced(xds_server, "2", mark)
    steps = [(e.kind, e.type_url.rsplit(".", 1)[-1]) for e in xds_server.events[mark:] if e.kind in ("sent", "ack")]
    assert steps == [("sent", "Cluster"), ("ack", "Cluster"), ("sent", "Listener"), ("ack", "Listener")]
    assert await eventually(audit, broker, "audit.x", "delivered") == "delivered"
    # the ADS cluster, nats-main, nats-audit
    assert wait_until(lambda: sidecar.stats()["cluster_manager.active_clusters"] == 3, 10)

    mark = xds_server.mark()
    publish(xds_server, spec1, "3")
    synced(xds_server, "3", mark)
    steps = [(e.kind, e.type_url.rsplit(".", 1)[-1]) for e in xds_server.events[mark:] if e.kind in ("sent", "ack")]
    assert steps == [("sent", "Listener"), ("ack", "Listener"), ("sent", "Cluster"), ("ack", "Cluster")]
    assert wait_until(lambda: sidecar.stats()["cluster_manager.active_clusters"] == 2, 10)
    assert await publish_outcome(orders, broker, "orders.x") == "delivered"
    stats = sidecar.stats()
    assert stats["listener_manager.lds.update_rejected"] == 0 and stats["cluster_manager.cds.update_rejected"] == 0
