"""The ADS server at the protocol level: a scripted gRPC client against AdsServer on a free port.

State of the world: ACK, NACK (error_detail logged, no resend), stale nonces, resource-name
subscriptions and wildcard, CDS before LDS, cluster removal only after the listeners using it are
gone, a reconnect that resumes. Delta: wildcard and named subscribe/unsubscribe, upserts of changed
resources only, removals, NACK without resend, initial_resource_versions on reconnect.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from evmesh.testing.xds import xds_cluster, xds_tcp_listener
from evmesh.xds import CLUSTER_TYPE, LISTENER_TYPE, AdsServer, Snapshot, SnapshotCache

NODE = base_pb2.Node(id="sidecar-1", cluster="evmesh")
QUIET = 0.3  # how long "nothing is sent" is watched for


cluster = xds_cluster


def listener(name: str, port: int, to: str, prefix: str | None = None):
    return xds_tcp_listener(name, port, to, prefix)


def snap(label: str, listeners=(), clusters=()) -> Snapshot:
    return Snapshot({CLUSTER_TYPE: list(clusters), LISTENER_TYPE: list(listeners)}, label=label)


def names(resp) -> list[str]:
    out = []
    for any_ in resp.resources:
        msg = cluster_pb2.Cluster() if resp.type_url == CLUSTER_TYPE else listener_pb2.Listener()
        (any_.resource if isinstance(any_, discovery_pb2.Resource) else any_).Unpack(msg)
        out.append(msg.name)
    return out


class Client:
    """A scripted ADS client: write requests, read responses with a timeout, assert silence."""

    def __init__(self, call):
        self.call = call
        self.responses: asyncio.Queue = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())  # cancelling call.read() would cancel the RPC

    async def _read(self) -> None:
        while True:
            resp = await self.call.read()
            if resp is grpc.aio.EOF:
                return
            self.responses.put_nowait(resp)

    async def send(self, **kw) -> None:
        await self.call.write(self.request_class(**kw))

    async def recv(self, timeout: float = 5.0):
        return await asyncio.wait_for(self.responses.get(), timeout)

    async def silent(self, wait: float = QUIET) -> None:
        try:
            resp = await asyncio.wait_for(self.responses.get(), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected response: {resp.type_url} nonce {resp.nonce}")

    def close(self) -> None:
        self._reader.cancel()
        self.call.cancel()


class Sotw(Client):
    request_class = discovery_pb2.DiscoveryRequest

    async def ack(self, resp, names=()) -> None:
        await self.send(type_url=resp.type_url, version_info=resp.version_info, response_nonce=resp.nonce,
                        resource_names=list(names))

    async def nack(self, resp, message: str, version: str = "", names=()) -> None:
        await self.send(type_url=resp.type_url, version_info=version, response_nonce=resp.nonce,
                        resource_names=list(names), error_detail=status_pb2.Status(code=3, message=message))


class Delta(Client):
    request_class = discovery_pb2.DeltaDiscoveryRequest

    async def ack(self, resp) -> None:
        await self.send(type_url=resp.type_url, response_nonce=resp.nonce)

    async def nack(self, resp, message: str) -> None:
        await self.send(type_url=resp.type_url, response_nonce=resp.nonce,
                        error_detail=status_pb2.Status(code=3, message=message))


@pytest.fixture
async def ads():
    cache = SnapshotCache()
    server = AdsServer(cache)
    events = []
    server.observe(events.append)
    port = await server.start("127.0.0.1", 0)
    channels = []
    clients = []

    async def connect(kind: str = "sotw"):
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        client = Sotw(stub.StreamAggregatedResources()) if kind == "sotw" else Delta(stub.DeltaAggregatedResources())
        clients.append(client)
        return client

    class Handle:
        pass

    h = Handle()
    h.cache, h.server, h.events, h.connect = cache, server, events, connect
    h.set = lambda s: cache.set_snapshot("evmesh", s)

    async def until(predicate, timeout: float = 5.0):
        """Wait until the server has processed what the client sent (the predicate holds)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, f"timed out; events: {events[-5:]}"
            await asyncio.sleep(0.01)

    h.until = until
    h.synced = lambda label: until(lambda: any(e.kind == "synced" and e.label == label for e in events))
    yield h
    for c in clients:
        c.close()
    for c in channels:
        await c.close()
    await server.stop(0)


async def test_sotw_initial_cds_then_lds_and_acks(ads):
    ads.set(snap("1", [listener("l1", 15001, "c1")], [cluster("c1")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    cds = await c.recv()
    assert (cds.type_url, names(cds), cds.nonce) == (CLUSTER_TYPE, ["c1"], "1")
    assert cds.version_info == ads.cache.get_snapshot("evmesh").version(CLUSTER_TYPE)
    await c.send(type_url=LISTENER_TYPE)  # Envoy asks for LDS before its CDS ACK: held back
    await c.silent()
    await c.ack(cds)
    lds = await c.recv()
    assert (lds.type_url, names(lds)) == (LISTENER_TYPE, ["l1"])
    await c.ack(lds)
    await c.silent()
    kinds = [(e.kind, e.type_url) for e in ads.events if e.kind in ("ack", "synced")]
    assert kinds == [("ack", CLUSTER_TYPE), ("ack", LISTENER_TYPE), ("synced", "")]
    (status,) = ads.server.status()
    assert status["types"]["LDS"]["acked"] == lds.version_info and status["node_id"] == "sidecar-1"


async def test_sotw_nack_is_logged_kept_and_not_resent(ads, caplog):
    caplog.set_level(logging.INFO, "evmesh.xds")
    ads.set(snap("1", [listener("l1", 15001, "c1")], [cluster("c1")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    await c.ack(await c.recv())
    await c.send(type_url=LISTENER_TYPE)
    good = await c.recv()
    await c.ack(good)
    ads.set(snap("2", [listener("l1", 15001, "c1", prefix="bad")], [cluster("c1")]))
    bad = await c.recv()
    assert bad.version_info != good.version_info
    await c.nack(bad, "Error adding/updating listener(s) l1: evmesh: max_payload: must be >= 1", version=good.version_info)
    await c.silent(0.5)  # the rejected version is not sent again
    (status,) = ads.server.status()
    assert status["types"]["LDS"]["acked"] == good.version_info
    assert status["types"]["LDS"]["nacked"] == bad.version_info
    assert "max_payload: must be >= 1" in status["types"]["LDS"]["error"]
    assert any("LDS NACK" in r.message and "max_payload: must be >= 1" in r.message for r in caplog.records)
    # the same snapshot published again is still not resent; a fixed one is
    ads.set(snap("3", [listener("l1", 15001, "c1", prefix="bad")], [cluster("c1")]))
    await c.silent()
    ads.set(snap("4", [listener("l1", 15001, "c1", prefix="fixed")], [cluster("c1")]))
    fixed = await c.recv()
    assert fixed.version_info not in (good.version_info, bad.version_info)
    await c.ack(fixed)
    await ads.synced("4")


async def test_sotw_stale_nonce_is_ignored(ads):
    ads.set(snap("1", [], [cluster("c1")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    first = await c.recv()
    await c.ack(first)
    ads.set(snap("2", [], [cluster("c1"), cluster("c2")]))
    second = await c.recv()
    # a late request carrying the old nonce: neither an ACK of `second` nor a new subscription
    await c.send(type_url=CLUSTER_TYPE, version_info=first.version_info, response_nonce=first.nonce,
                 resource_names=["c1"])
    await c.silent()
    assert [e.kind for e in ads.events if e.kind in ("stale", "ack")] == ["ack", "stale"]
    (status,) = ads.server.status()
    assert status["types"]["CDS"]["awaiting_ack"] and status["types"]["CDS"]["wildcard"]
    await c.ack(second)
    await ads.until(lambda: ads.server.status()[0]["types"]["CDS"]["acked"] == second.version_info)


async def test_sotw_resource_name_subscriptions_and_wildcard(ads):
    ads.set(snap("1", [], [cluster("a"), cluster("b"), cluster("c")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE, resource_names=["a"])
    r1 = await c.recv()
    assert names(r1) == ["a"]
    await c.ack(r1, names=["a", "c", "zz"])  # subscribe to two more (one does not exist)
    r2 = await c.recv()
    assert names(r2) == ["a", "c"]
    await c.ack(r2, names=["c"])
    r3 = await c.recv()
    assert names(r3) == ["c"]
    await c.ack(r3, names=["*"])  # explicit wildcard
    r4 = await c.recv()
    assert names(r4) == ["a", "b", "c"]
    await c.ack(r4, names=["*"])
    await c.silent()
    ads.set(snap("2", [], [cluster("a"), cluster("d")]))
    r5 = await c.recv()
    assert names(r5) == ["a", "d"]
    # a non-wildcard subscriber is not told about changes to resources it did not ask for
    c2 = await ads.connect()
    await c2.send(node=base_pb2.Node(id="sidecar-2", cluster="evmesh"), type_url=CLUSTER_TYPE, resource_names=["a"])
    r = await c2.recv()
    assert names(r) == ["a"]
    await c2.ack(r, names=["a"])
    ads.set(snap("3", [], [cluster("a"), cluster("e")]))
    await c2.silent()


async def test_sotw_empty_first_request_is_wildcard_and_empty_type_gets_an_answer(ads):
    ads.set(snap("1", [], []))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    r = await c.recv()
    assert names(r) == [] and r.version_info  # Envoy's initial fetch needs an answer, even an empty one


async def test_sotw_new_cluster_is_acked_before_the_listener_that_uses_it(ads):
    ads.set(snap("1", [listener("l1", 15001, "c1")], [cluster("c1")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    await c.ack(await c.recv())
    await c.send(type_url=LISTENER_TYPE)
    await c.ack(await c.recv())
    ads.set(snap("2", [listener("l1", 15001, "c1"), listener("l2", 15002, "c2")], [cluster("c1"), cluster("c2")]))
    cds = await c.recv()
    assert (cds.type_url, names(cds)) == (CLUSTER_TYPE, ["c1", "c2"])
    await c.silent()  # no LDS before the CDS ACK
    await c.ack(cds)
    lds = await c.recv()
    assert (lds.type_url, names(lds)) == (LISTENER_TYPE, ["l1", "l2"])


async def test_sotw_cluster_removed_only_after_its_listener_is_gone(ads):
    ads.set(snap("1", [listener("l1", 15001, "c1"), listener("l2", 15002, "c2")], [cluster("c1"), cluster("c2")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    await c.ack(await c.recv())
    await c.send(type_url=LISTENER_TYPE)
    await c.ack(await c.recv())
    ads.set(snap("2", [listener("l1", 15001, "c1")], [cluster("c1")]))
    lds = await c.recv()
    assert (lds.type_url, names(lds)) == (LISTENER_TYPE, ["l1"])  # CDS still holds c2 for l2
    await c.silent()
    await c.ack(lds)
    cds = await c.recv()
    assert (cds.type_url, names(cds)) == (CLUSTER_TYPE, ["c1"])
    await c.ack(cds)
    await ads.synced("2")


async def test_sotw_rejected_listener_update_keeps_its_old_cluster(ads):
    """l1 moves from c1 to c2; Envoy NACKs it, so it may still use c1: c1 stays in CDS."""
    ads.set(snap("1", [listener("l1", 15001, "c1")], [cluster("c1")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    await c.ack(await c.recv())
    await c.send(type_url=LISTENER_TYPE)
    await c.ack(await c.recv())
    ads.set(snap("2", [listener("l1", 15001, "c2")], [cluster("c2")]))
    cds = await c.recv()
    assert names(cds) == ["c1", "c2"]
    await c.ack(cds)
    lds = await c.recv()
    await c.nack(lds, "rejected")
    await c.silent()  # c1 is not removed: the listener Envoy kept still points at it


async def test_sotw_reconnect_with_current_version_resumes_without_resending(ads):
    ads.set(snap("1", [listener("l1", 15001, "c1")], [cluster("c1")]))
    c = await ads.connect()
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    cds = await c.recv()
    await c.ack(cds)
    await c.send(type_url=LISTENER_TYPE)
    lds = await c.recv()
    await c.ack(lds)
    await c.call.done_writing()
    # a new stream (Envoy after a control-plane restart) that already has both versions
    c2 = await ads.connect()
    await c2.send(node=NODE, type_url=CLUSTER_TYPE, version_info=cds.version_info)
    await c2.send(type_url=LISTENER_TYPE, version_info=lds.version_info)
    await c2.silent()
    await ads.until(lambda: [e.kind for e in ads.events if e.kind == "resumed"] == ["resumed", "resumed"])
    # one with an old version gets the current one
    c3 = await ads.connect()
    await c3.send(node=NODE, type_url=CLUSTER_TYPE, version_info="old")
    assert names(await c3.recv()) == ["c1"]


async def test_node_without_snapshot_waits_and_is_served_when_one_is_set(ads):
    c = await ads.connect()
    await c.send(node=base_pb2.Node(id="x", cluster="other"), type_url=CLUSTER_TYPE)
    await c.silent()
    ads.cache.set_snapshot("other", snap("1", [], [cluster("z")]))
    assert names(await c.recv()) == ["z"]


async def test_delta_wildcard_upserts_changes_and_removals(ads):
    ads.set(snap("1", [listener("l1", 15001, "c1"), listener("l2", 15002, "c1")], [cluster("c1")]))
    c = await ads.connect("delta")
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    cds = await c.recv()
    assert (names(cds), list(cds.removed_resources)) == (["c1"], [])
    assert cds.resources[0].version and cds.system_version_info
    await c.send(type_url=LISTENER_TYPE)
    await c.silent()  # held until the CDS ACK
    await c.ack(cds)
    lds = await c.recv()
    assert names(lds) == ["l1", "l2"]
    await c.ack(lds)
    # change l2 only: only l2 is sent
    ads.set(snap("2", [listener("l1", 15001, "c1"), listener("l2", 15002, "c1", prefix="x")], [cluster("c1")]))
    upd = await c.recv()
    assert (upd.type_url, names(upd), list(upd.removed_resources)) == (LISTENER_TYPE, ["l2"], [])
    await c.ack(upd)
    ads.set(snap("3", [listener("l1", 15001, "c1")], [cluster("c1")]))
    rm = await c.recv()
    assert (names(rm), list(rm.removed_resources)) == ([], ["l2"])
    await c.ack(rm)
    await c.silent()
    await ads.synced("3")


async def test_delta_named_subscribe_unsubscribe_and_removal(ads):
    ads.set(snap("1", [], [cluster("a"), cluster("b"), cluster("c")]))
    c = await ads.connect("delta")
    await c.send(node=NODE, type_url=CLUSTER_TYPE, resource_names_subscribe=["a"])
    r = await c.recv()
    assert names(r) == ["a"]
    await c.ack(r)
    await c.send(type_url=CLUSTER_TYPE, resource_names_subscribe=["b"])
    r = await c.recv()
    assert (names(r), list(r.removed_resources)) == (["b"], [])  # only the new one
    await c.ack(r)
    await c.send(type_url=CLUSTER_TYPE, resource_names_unsubscribe=["a"])
    await c.silent()  # the client drops "a" itself
    ads.set(snap("2", [], [cluster("a", 5000), cluster("c")]))  # a changes (not subscribed), b goes
    r = await c.recv()
    assert (names(r), list(r.removed_resources)) == ([], ["b"])
    await c.ack(r)
    await c.send(type_url=CLUSTER_TYPE, resource_names_subscribe=["*"])
    r = await c.recv()
    assert names(r) == ["a", "c"]
    await c.ack(r)
    await c.send(type_url=CLUSTER_TYPE, resource_names_unsubscribe=["*"])
    await c.silent()


async def test_delta_nack_not_resent_and_stale_nonce(ads, caplog):
    caplog.set_level(logging.INFO, "evmesh.xds")
    ads.set(snap("1", [listener("l1", 15001, "c1")], [cluster("c1")]))
    c = await ads.connect("delta")
    await c.send(node=NODE, type_url=CLUSTER_TYPE)
    cds = await c.recv()
    await c.ack(cds)
    await c.send(type_url=LISTENER_TYPE)
    lds = await c.recv()
    await c.ack(lds)
    ads.set(snap("2", [listener("l1", 15001, "c1", prefix="bad")], [cluster("c1")]))
    bad = await c.recv()
    await c.nack(bad, "listener l1: filter config rejected")
    await c.silent()
    assert any("LDS NACK" in r.message and "filter config rejected" in r.message for r in caplog.records)
    (status,) = ads.server.status()
    assert status["types"]["LDS"]["acked"] == lds.system_version_info
    await c.send(type_url=LISTENER_TYPE, response_nonce=lds.nonce)  # stale: not an ACK
    await c.silent()
    await ads.until(lambda: ads.events[-1].kind == "stale")
    ads.set(snap("3", [listener("l1", 15001, "c1", prefix="good")], [cluster("c1")]))
    good = await c.recv()
    assert names(good) == ["l1"]


async def test_delta_reconnect_sends_only_what_differs(ads):
    ads.set(snap("1", [listener("l1", 15001, "c1"), listener("l2", 15002, "c1")], [cluster("c1")]))
    s = ads.cache.get_snapshot("evmesh")
    c = await ads.connect("delta")
    held = {"l1": s.get(LISTENER_TYPE)["l1"].version, "l2": "outdated", "l9": "gone"}
    await c.send(node=NODE, type_url=CLUSTER_TYPE, initial_resource_versions={"c1": s.get(CLUSTER_TYPE)["c1"].version})
    cds = await c.recv()  # the first answer, with nothing in it
    assert (names(cds), list(cds.removed_resources)) == ([], [])
    await c.ack(cds)
    await c.send(type_url=LISTENER_TYPE, initial_resource_versions=held)
    lds = await c.recv()
    assert (names(lds), list(lds.removed_resources)) == (["l2"], ["l9"])


async def test_other_resource_types_are_served_by_name(ads):
    """The server is type-agnostic beyond CDS/LDS ordering: e.g. ECDS (TypedExtensionConfig) resources,
    which the live-policy work may use, are served to named subscriptions."""
    from envoy.config.core.v3 import extension_pb2
    from google.protobuf import struct_pb2

    from evmesh.xds import Resource

    ecds = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"

    def policy(name: str, allow: str) -> Resource:
        cfg = extension_pb2.TypedExtensionConfig(name=name)
        cfg.typed_config.Pack(struct_pb2.Struct(fields={"allow": struct_pb2.Value(string_value=allow)}))
        return Resource.of(cfg, ecds)

    ads.set(Snapshot({ecds: [policy("orders", "orders.>"), policy("billing", "billing.>")]}, "1"))
    c = await ads.connect()
    await c.send(node=NODE, type_url=ecds, resource_names=["orders"])
    r = await c.recv()
    assert (r.type_url, len(r.resources)) == (ecds, 1)
    await c.ack(r, names=["orders"])
    ads.set(Snapshot({ecds: [policy("orders", "orders.new"), policy("billing", "billing.>")]}, "2"))
    r2 = await c.recv()
    got = extension_pb2.TypedExtensionConfig()
    r2.resources[0].Unpack(got)
    assert got.name == "orders" and r2.version_info != r.version_info
    await c.ack(r2, names=["orders"])
    ads.set(Snapshot({ecds: [policy("orders", "orders.new"), policy("billing", "billing.x")]}, "3"))
    await c.silent()  # a change to a resource this client did not subscribe to
