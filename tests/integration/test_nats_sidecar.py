"""NATS through the evmesh sidecar: real nats-server, real Envoy + libevmesh.so, real nats-py clients.

Messaging (pub/sub, request/reply, headers, queue groups, JetStream pull consumers) and the metrics of
docs/architecture.md, asserted as exact /stats deltas.
"""

from __future__ import annotations

import asyncio

import nats
import pytest

from natsutil import CONNECT, RawNats, Stats, flushed, only, pub

OPEN = "open"  # no ACL, subject groups for the metrics
JS = "js"  # an ACL that lets a JetStream client work (API, acks, inboxes) and nothing else

LISTENERS = {
    OPEN: {
        "subjects": [
            {"name": "orders_new", "pattern": "orders.new"},
            {"name": "orders", "pattern": "orders.>"},
            {"name": "inbox", "pattern": "_INBOX.>"},
        ],
    },
    JS: {
        "acl": {
            "publish": {"allow": ["jobs.>", "_INBOX.>", "$JS.API.>", "$JS.ACK.>"], "deny": ["jobs.secret.>"]},
            "subscribe": {"allow": ["jobs.>", "_INBOX.>"], "deny": ["jobs.secret.>"]},
        },
        "subjects": [{"name": "jobs", "pattern": "jobs.>"}, {"name": "js_api", "pattern": "$JS.>"}],
    },
}


@pytest.fixture(scope="module")
def mesh(start_sidecar):
    return start_sidecar(LISTENERS)


def url(mesh, listener: str = OPEN) -> str:
    return f"nats://127.0.0.1:{mesh.listener_port(listener)}"


async def connect(target: str, **kwargs):
    return await nats.connect(target, allow_reconnect=False, **kwargs)


async def test_pub_sub_reaches_the_real_server_and_back(mesh, broker):
    stats = Stats(mesh, OPEN)
    before = stats.snapshot()
    sub_nc, pub_nc, direct = await connect(url(mesh)), await connect(url(mesh)), await connect(broker.url)
    try:
        via_sidecar = await sub_nc.subscribe("orders.created")
        direct_sub = await direct.subscribe("orders.created")
        await flushed(sub_nc)
        await flushed(direct)
        payloads = [b"first", b"", b"x" * 1000]
        for p in payloads:
            await pub_nc.publish("orders.created", p)
        await flushed(pub_nc)
        assert [(await via_sidecar.next_msg(timeout=5)).data for _ in payloads] == payloads
        assert [(await direct_sub.next_msg(timeout=5)).data for _ in payloads] == payloads
    finally:
        for nc in (sub_nc, pub_nc, direct):
            await nc.close()
    n, size = len(payloads), sum(map(len, payloads))
    delta = await stats.wait_delta(before, {"subject.orders.delivered_msgs": n})
    assert only(delta, ["subject."]) == {
        "subject.orders.published_msgs": n, "subject.orders.published_bytes": size,
        "subject.orders.delivered_msgs": n, "subject.orders.delivered_bytes": size,
    }
    assert delta["connections_total"] == 2


async def test_request_reply_in_both_directions(mesh, broker):
    stats = Stats(mesh, OPEN)
    before = stats.snapshot()
    responder, requester, direct = await connect(url(mesh)), await connect(url(mesh)), await connect(broker.url)
    try:
        async def echo(msg):
            await msg.respond(msg.data.upper())

        await responder.subscribe("svc.echo", cb=echo)
        await flushed(responder)
        reply = await requester.request("svc.echo", b"hello", timeout=5)
        assert reply.data == b"HELLO"
        # A requester that bypasses the sidecar reaches the responder behind it, too.
        reply = await direct.request("svc.echo", b"direct", timeout=5)
        assert reply.data == b"DIRECT"
    finally:
        for nc in (responder, requester, direct):
            await nc.close()
    delta = await stats.wait_delta(before, {"subject.inbox.delivered_msgs": 1, "subject.other.delivered_msgs": 2})
    assert only(delta, ["subject."]) == {
        # requests to svc.echo: one published through the sidecar, two delivered to the responder
        "subject.other.published_msgs": 1, "subject.other.published_bytes": 5,
        "subject.other.delivered_msgs": 2, "subject.other.delivered_bytes": 11,
        # replies: two published by the responder, one delivered to the requester behind the sidecar
        "subject.inbox.published_msgs": 2, "subject.inbox.published_bytes": 11,
        "subject.inbox.delivered_msgs": 1, "subject.inbox.delivered_bytes": 5,
    }


async def test_headers_round_trip(mesh, broker):
    sub_nc, pub_nc, direct = await connect(url(mesh)), await connect(url(mesh)), await connect(broker.url)
    try:
        via_sidecar = await sub_nc.subscribe("orders.hdr")
        direct_sub = await direct.subscribe("orders.hdr")
        await flushed(sub_nc)
        await flushed(direct)
        headers = {"Trace-Id": "abc-123", "X-Tenant": "t1"}
        await pub_nc.publish("orders.hdr", b"with headers", headers=headers)
        await flushed(pub_nc)
        for sub in (via_sidecar, direct_sub):
            msg = await sub.next_msg(timeout=5)
            assert msg.data == b"with headers"
            assert msg.headers == headers
    finally:
        for nc in (sub_nc, pub_nc, direct):
            await nc.close()


async def test_hpub_becomes_hmsg_byte_for_byte(mesh):
    """Raw HPUB in, raw HMSG out: the sidecar passes header frames untouched and counts headers as payload."""
    stats = Stats(mesh, OPEN)
    before = stats.snapshot()
    hdr = b"NATS/1.0\r\nX-A: 1\r\nX-B: two\r\n\r\n"
    body = b"hello headers"
    subscriber = await RawNats.connect(mesh.listener_port(OPEN))
    publisher = await RawNats.connect(mesh.listener_port(OPEN))
    try:
        await subscriber.send(b"SUB orders.raw 7\r\n")
        assert await subscriber.ping() == []
        await publisher.send(b"HPUB orders.raw %d %d\r\n" % (len(hdr), len(hdr) + len(body)) + hdr + body + b"\r\n")
        assert await publisher.ping() == []
        line = await subscriber.read_line()
        assert line == b"HMSG orders.raw 7 %d %d\r\n" % (len(hdr), len(hdr) + len(body))
        rest = await asyncio.wait_for(subscriber.reader.readexactly(len(hdr) + len(body) + 2), 5)
        assert rest == hdr + body + b"\r\n"
    finally:
        await subscriber.close()
        await publisher.close()
    total = len(hdr) + len(body)
    delta = await stats.wait_delta(before, {"subject.orders.delivered_msgs": 1})
    assert only(delta, ["subject."]) == {
        "subject.orders.published_msgs": 1, "subject.orders.published_bytes": total,
        "subject.orders.delivered_msgs": 1, "subject.orders.delivered_bytes": total,
    }


async def test_queue_group_members_share_the_messages(mesh):
    stats = Stats(mesh, OPEN)
    before = stats.snapshot()
    members = [await connect(url(mesh)), await connect(url(mesh))]
    publisher = await connect(url(mesh))
    got: list[list[bytes]] = [[], []]
    try:
        for i, nc in enumerate(members):
            async def take(msg, box=got[i]):
                box.append(msg.data)
            await nc.subscribe("work.items", queue="workers", cb=take)
            await flushed(nc)
        sent = [b"item-%02d" % i for i in range(40)]
        for data in sent:
            await publisher.publish("work.items", data)
        await flushed(publisher)
        for _ in range(250):
            if len(got[0]) + len(got[1]) >= len(sent):
                break
            await asyncio.sleep(0.02)
        for nc in members:
            await flushed(nc)
    finally:
        for nc in (*members, publisher):
            await nc.close()
    assert got[0] and got[1], "both members get a share"
    assert sorted(got[0] + got[1]) == sent, "each message delivered exactly once"
    delta = await stats.wait_delta(before, {"subject.other.delivered_msgs": 40})
    assert delta["subject.other.published_msgs"] == 40
    assert delta["subject.other.delivered_msgs"] == 40


async def test_jetstream_pull_consumer_with_explicit_acks(mesh):
    """JetStream API requests, publish acks, pull fetches and message acks all pass the ACL'd listener."""
    stats = Stats(mesh, JS)
    before = stats.snapshot()
    nc = await connect(url(mesh, JS))
    n = 12
    try:
        js = nc.jetstream()
        await js.add_stream(name="JOBS", subjects=["jobs.>"])
        for i in range(n):
            ack = await js.publish(f"jobs.{i % 3}", b"job-%d" % i)
            assert (ack.stream, ack.seq) == ("JOBS", i + 1)
        psub = await js.pull_subscribe("jobs.>", durable="worker", stream="JOBS")
        got = []
        while len(got) < n:
            for msg in await psub.fetch(n - len(got), timeout=5):
                got.append(msg.data)
                await msg.ack()
        assert got == [b"job-%d" % i for i in range(n)]
        await flushed(nc)
        for _ in range(100):
            info = await js.consumer_info("JOBS", "worker")
            if info.num_ack_pending == 0 and info.ack_floor.stream_seq == n:
                break
            await asyncio.sleep(0.05)
        assert info.num_ack_pending == 0
        assert info.num_pending == 0
        assert info.delivered.stream_seq == n and info.delivered.consumer_seq == n
        assert info.ack_floor.stream_seq == n
    finally:
        await nc.close()
    delta = await stats.wait_delta(before, {"subject.jobs.published_msgs": n})
    assert delta["subject.jobs.published_msgs"] == n
    assert not {k: v for k, v in delta.items() if k.endswith(("_denied", "protocol_errors"))}, delta
    assert "server_errors" not in delta, delta


async def test_subject_group_metrics_for_a_known_workload(mesh):
    """First matching group wins; unmatched subjects count as `other`; deliveries count per subscription."""
    stats = Stats(mesh, OPEN)
    before = stats.snapshot()
    exact, wide, misc, publisher = [await connect(url(mesh)) for _ in range(4)]
    try:
        subs = [await exact.subscribe("orders.new"), await wide.subscribe("orders.>"), await misc.subscribe("misc.>")]
        for nc in (exact, wide, misc):
            await flushed(nc)
        for data in (b"a", b"bb", b""):
            await publisher.publish("orders.new", data)
        for _ in range(2):
            await publisher.publish("orders.paid", b"0123456789")
        await publisher.publish("misc.thing", b"seven!!")
        await flushed(publisher)
        expected_counts = [3, 5, 1]
        for sub, count in zip(subs, expected_counts):
            for _ in range(count):
                await sub.next_msg(timeout=5)
    finally:
        for nc in (exact, wide, misc, publisher):
            await nc.close()
    delta = await stats.wait_delta(before, {"subject.other.delivered_msgs": 1, "subject.orders.delivered_msgs": 2,
                                            "subject.orders_new.delivered_msgs": 6})
    assert only(delta, ["subject."]) == {
        "subject.orders_new.published_msgs": 3, "subject.orders_new.published_bytes": 3,
        "subject.orders_new.delivered_msgs": 6, "subject.orders_new.delivered_bytes": 6,  # exact + wide
        "subject.orders.published_msgs": 2, "subject.orders.published_bytes": 20,
        "subject.orders.delivered_msgs": 2, "subject.orders.delivered_bytes": 20,
        "subject.other.published_msgs": 1, "subject.other.published_bytes": 7,
        "subject.other.delivered_msgs": 1, "subject.other.delivered_bytes": 7,
    }


async def test_connection_and_frame_counters(mesh):
    """A raw client's CONNECT + PING and the server's INFO + PONG, counted to the byte; the active
    gauge goes back to its previous value when the connection closes."""
    stats = Stats(mesh, OPEN)
    await stats.wait_active(0)  # no connection of an earlier test still closing
    before = stats.snapshot()
    raw = await RawNats.connect(mesh.listener_port(OPEN))
    try:
        assert await raw.ping() == []
        delta = await stats.wait_delta(before, {"c2s.frames": 2, "s2c.frames": 2})
        assert delta == {
            "connections_total": 1, "connections_active": 1,
            "c2s.frames": 2, "c2s.bytes": len(CONNECT) + len(b"PING\r\n"),
            "s2c.frames": 2, "s2c.bytes": len(raw.info_line) + len(b"PONG\r\n"),
        }
        # one message to ourselves: PUB + SUB + PING in, MSG + PONG out
        await raw.send(b"SUB orders.self 1\r\n" + pub("orders.self", b"ping-pong"))
        lines = await raw.ping()
        assert lines == [b"MSG orders.self 1 9\r\n", b"ping-pong\r\n"]
        delta = stats.delta(before)
        assert delta["c2s.frames"] == 5 and delta["s2c.frames"] == 4
        assert delta["c2s.bytes"] == len(CONNECT) + 2 * 6 + len(b"SUB orders.self 1\r\n") + len(pub("orders.self", b"ping-pong"))
    finally:
        await raw.close()
    await stats.wait_active(before["connections_active"])
    assert stats.snapshot()["connections_total"] == before["connections_total"] + 1


async def test_active_gauge_tracks_nats_py_clients(mesh):
    stats = Stats(mesh, OPEN)
    await stats.wait_active(0)
    clients = [await connect(url(mesh)) for _ in range(3)]
    try:
        assert stats.snapshot()["connections_active"] == 3
    finally:
        for nc in clients:
            await nc.close()
    await stats.wait_active(0)
