"""The sidecar's ACL with real clients: denied frames are answered like nats-server answers them, never
reach the server, and leave the connection usable; the -ERR lines equal a real nats-server's byte for byte.
"""

from __future__ import annotations

import asyncio

import nats
import pytest

from natsutil import ConfiguredNats, RawNats, Stats, flushed, only, perm_pub, perm_sub, pub, varz

GUARDED = "guarded"
STRICT = "strict"  # the same permissions as the `u` user of the real server below

LISTENERS = {
    GUARDED: {
        "acl": {
            "publish": {"allow": ["orders.>", "_INBOX.>"], "deny": ["orders.secret.>"]},
            "subscribe": {"allow": ["orders.>", "_INBOX.>"], "deny": ["orders.secret.>"]},
        },
        "subjects": [{"name": "secret", "pattern": "orders.secret.>"}, {"name": "orders", "pattern": "orders.>"}],
    },
    STRICT: {"acl": {"publish": {"deny": ["secret.>"]}, "subscribe": {"deny": ["secret.>"]}}},
}

AUTH_CONF = """authorization {
  users = [{user: u, password: p, permissions: {publish: {deny: ["secret.>"]}, subscribe: {deny: ["secret.>"]}}}]
}"""
AUTH_CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"user":"u","pass":"p"}\r\n'


@pytest.fixture(scope="module")
def mesh(start_sidecar):
    return start_sidecar(LISTENERS)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A second, real nats-server that enforces the same permissions itself."""
    server = ConfiguredNats(tmp_path_factory.mktemp("auth-nats"), AUTH_CONF)
    try:
        yield server
    finally:
        server.stop()


class Errors:
    """An error_cb that keeps what nats-py hands it."""

    def __init__(self):
        self.seen: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc))

    async def wait(self, n: int, timeout: float = 5.0) -> list[str]:
        for _ in range(int(timeout / 0.02)):
            if len(self.seen) >= n:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        return self.seen


async def connect(target: str, errors: Errors | None = None, **kwargs):
    if errors is not None:
        kwargs["error_cb"] = errors.record
    return await nats.connect(target, allow_reconnect=False, **kwargs)


def sidecar_url(mesh, listener: str = GUARDED) -> str:
    return f"nats://127.0.0.1:{mesh.listener_port(listener)}"


async def test_denied_publish_is_reported_dropped_and_the_connection_goes_on(mesh, broker):
    stats = Stats(mesh, GUARDED)
    before, server_before = stats.snapshot(), varz(broker)
    errors = Errors()
    nc = await connect(sidecar_url(mesh), errors)
    direct = await connect(broker.url)
    try:
        seen_directly = [await direct.subscribe("orders.>"), await direct.subscribe("billing.>")]
        await flushed(direct)

        await nc.publish("orders.secret.plan", b"must not leave")  # denied by the deny list
        await nc.publish("billing.invoice", b"not allowed")  # not in the allow list
        await flushed(nc)
        # nats-py lower-cases -ERR texts before the error_cb; the raw tests below check the exact bytes.
        assert await errors.wait(2) == [
            'nats: permissions violation for publish to "orders.secret.plan"',
            'nats: permissions violation for publish to "billing.invoice"',
        ]
        assert nc.is_connected

        # The same connection keeps working on allowed subjects, for publishing and subscribing.
        mine = await nc.subscribe("orders.ok")
        await flushed(nc)
        await nc.publish("orders.ok", b"allowed")
        await flushed(nc)
        assert (await mine.next_msg(timeout=5)).data == b"allowed"
        await flushed(direct)
        first = await seen_directly[0].next_msg(timeout=5)
        assert (first.subject, first.data) == ("orders.ok", b"allowed")
        await flushed(direct)
        for sub in seen_directly:
            assert sub.pending_msgs == 0, "a denied message reached nats-server"
    finally:
        await nc.close()
        await direct.close()
    server_after = varz(broker)
    assert server_after["in_msgs"] - server_before["in_msgs"] == 1
    assert server_after["in_bytes"] - server_before["in_bytes"] == len(b"allowed")
    delta = await stats.wait_delta(before, {"subject.orders.delivered_msgs": 1})
    assert only(delta, ["subject."]) == {
        "subject.secret.publish_denied": 1,
        "subject.other.publish_denied": 1,
        "subject.orders.published_msgs": 1, "subject.orders.published_bytes": 7,
        "subject.orders.delivered_msgs": 1, "subject.orders.delivered_bytes": 7,
    }
    assert "server_errors" not in delta, "the -ERRs came from the sidecar, not from nats-server"


async def test_denied_subscriptions_are_reported_and_never_registered(mesh, broker):
    stats = Stats(mesh, GUARDED)
    before = stats.snapshot()
    errors = Errors()
    nc = await connect(sidecar_url(mesh), errors)
    direct = await connect(broker.url)
    try:
        denied = [
            await nc.subscribe("orders.secret.feed"),
            await nc.subscribe("orders.secret.feed", queue="auditors"),
            await nc.subscribe("billing.>"),
        ]
        await flushed(nc)
        assert await errors.wait(3) == [
            'nats: permissions violation for subscription to "orders.secret.feed"',
            'nats: permissions violation for subscription to "orders.secret.feed" using queue "auditors"',
            'nats: permissions violation for subscription to "billing.>"',
        ]
        allowed = await nc.subscribe("orders.public")
        await flushed(nc)
        for subject in ("orders.secret.feed", "billing.x", "orders.public"):
            await direct.publish(subject, subject.encode())
        await flushed(direct)
        assert (await allowed.next_msg(timeout=5)).data == b"orders.public"
        await flushed(nc)
        assert [s.pending_msgs for s in denied] == [0, 0, 0]
        assert nc.is_connected
    finally:
        await nc.close()
        await direct.close()
    delta = await stats.wait_delta(before, {"subject.orders.delivered_msgs": 1})
    assert only(delta, ["subject."]) == {
        "subject.secret.subscribe_denied": 2,
        "subject.other.subscribe_denied": 1,
        "subject.orders.delivered_msgs": 1, "subject.orders.delivered_bytes": len(b"orders.public"),
    }


async def test_wildcard_subscription_overlapping_a_denied_subject_is_refused(mesh, broker):
    """The sidecar cannot filter deliveries, so `orders.>` (which could receive orders.secret.x) is refused
    as a whole; `orders.*` cannot receive any orders.secret.> subject and is allowed."""
    stats = Stats(mesh, GUARDED)
    before = stats.snapshot()
    raw = await RawNats.connect(mesh.listener_port(GUARDED))
    direct = await connect(broker.url)
    try:
        await raw.send(b"SUB orders.> 1\r\nSUB orders.*.plan 2\r\nSUB > 3\r\nSUB orders.* 4\r\n")
        assert await raw.ping() == [perm_sub("orders.>"), perm_sub("orders.*.plan"), perm_sub(">")]
        await direct.publish("orders.secret.plan", b"s")
        await direct.publish("orders.x", b"x")
        await flushed(direct)
        assert await raw.ping() == [b"MSG orders.x 4 1\r\n", b"x\r\n"]
    finally:
        await raw.close()
        await direct.close()
    delta = await stats.wait_delta(before, {"subject.orders.subscribe_denied": 2})
    assert only(delta, ["subject."]) == {
        "subject.orders.subscribe_denied": 2,  # orders.> and orders.*.plan
        "subject.other.subscribe_denied": 1,  # >
        "subject.orders.delivered_msgs": 1, "subject.orders.delivered_bytes": 1,
    }


async def test_raw_denials_between_allowed_frames_in_one_segment(mesh, broker):
    """Allowed and denied frames packed into one write: exactly the allowed ones reach nats-server,
    one -ERR per denied frame, in order."""
    stats = Stats(mesh, GUARDED)
    before = stats.snapshot()
    raw = await RawNats.connect(mesh.listener_port(GUARDED))
    direct = await connect(broker.url)
    try:
        sub = await direct.subscribe("orders.>")
        await flushed(direct)
        await raw.send(pub("orders.a", b"1") + pub("orders.secret.a", b"2") + b"SUB orders.secret.b 9\r\n"
                       + pub("orders.b", b"3", reply="_INBOX.r") + pub("orders.secret.c", b"") + pub("orders.c", b"4"))
        assert await raw.ping() == [perm_pub("orders.secret.a"), perm_sub("orders.secret.b"), perm_pub("orders.secret.c")]
        await flushed(direct)
        got = []
        while sub.pending_msgs:
            m = await sub.next_msg(timeout=1)
            got.append((m.subject, m.reply, m.data))
        assert got == [("orders.a", "", b"1"), ("orders.b", "_INBOX.r", b"3"), ("orders.c", "", b"4")]
    finally:
        await raw.close()
        await direct.close()
    delta = await stats.wait_delta(before, {"subject.orders.published_msgs": 3})
    assert only(delta, ["subject."]) == {
        "subject.orders.published_msgs": 3, "subject.orders.published_bytes": 3,
        "subject.secret.publish_denied": 2, "subject.secret.subscribe_denied": 1,
    }


# ---------------------------------------------------------------- same bytes as a real nats-server

DENIED_FRAMES = {
    "pub": (b"PUB secret.x 1\r\nx\r\n", perm_pub("secret.x")),
    "pub-reply": (b"PUB secret.x _INBOX.1 2\r\nxy\r\n", perm_pub("secret.x")),
    "hpub": (b"HPUB secret.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", perm_pub("secret.x")),
    "sub": (b"SUB secret.x 1\r\n", perm_sub("secret.x")),
    "sub-queue": (b"SUB secret.x q1 1\r\n", perm_sub("secret.x", "q1")),
    "sub-wildcard": (b"SUB secret.> 1\r\n", perm_sub("secret.>")),
    # spellings nats-server accepts must not slip past the ACL
    "pub-lower-case": (b"pub secret.x 1\r\nx\r\n", perm_pub("secret.x")),
    "hpub-mixed-case": (b"HPub secret.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", perm_pub("secret.x")),
    "sub-lower-case-queue": (b"sub secret.x q1 1\r\n", perm_sub("secret.x", "q1")),
    "pub-tabs-and-spaces": (b"PUB\tsecret.x  \t1\r\nx\r\n", perm_pub("secret.x")),
    "pub-bare-newline": (b"PUB secret.x 1\nx\r\n", perm_pub("secret.x")),
}


@pytest.mark.parametrize("frame,expected", DENIED_FRAMES.values(), ids=DENIED_FRAMES.keys())
async def test_err_line_equals_the_real_servers(mesh, auth_server, frame, expected):
    server = await RawNats.connect(auth_server.port, AUTH_CONNECT)
    sidecar = await RawNats.connect(mesh.listener_port(STRICT))
    try:
        await server.send(frame)
        await sidecar.send(frame)
        from_server, from_sidecar = await server.ping(), await sidecar.ping()
    finally:
        await server.close()
        await sidecar.close()
    assert from_server == [expected], "the reference server answers as expected"
    assert from_sidecar == from_server


async def test_nats_py_sees_the_same_error_from_both(mesh, auth_server):
    seen = {}
    for name, target, auth in (("server", f"nats://127.0.0.1:{auth_server.port}", {"user": "u", "password": "p"}),
                               ("sidecar", sidecar_url(mesh, STRICT), {})):
        errors = Errors()
        nc = await connect(target, errors, **auth)
        try:
            await nc.publish("secret.x", b"x")
            await nc.subscribe("secret.y", queue="q")
            await flushed(nc)
            seen[name] = await errors.wait(2)
            assert nc.is_connected
        finally:
            await nc.close()
    assert seen["server"] == ['nats: permissions violation for publish to "secret.x"',
                              'nats: permissions violation for subscription to "secret.y" using queue "q"']
    assert seen["sidecar"] == seen["server"]
