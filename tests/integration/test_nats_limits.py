"""Payload limits and malformed client traffic through the sidecar, next to a real nats-server with the
same limits as the reference. A misbehaving connection is closed; Envoy and every other connection go on.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import urllib.request

import nats
import pytest

from natsutil import CONNECT, Bystander, ConfiguredNats, RawNats, Stats, flushed, only, pub, varz

TINY = "tiny"  # max_payload 1024 in the filter, 1 MiB in the server behind it
LINE = "line"  # max_control_line 256
BEHIND_SMALL = "behind_small"  # filter defaults in front of a server whose own max_payload is 1024

GROUPS = [{"name": "orders", "pattern": "orders.>"}, {"name": "bystander", "pattern": "bystander.>"}]
LISTENERS = {
    TINY: {"max_payload": 1024, "subjects": GROUPS},
    LINE: {"max_control_line": 256, "subjects": GROUPS},
}
SMALL_LIMITS = "max_payload: 1024\nmax_control_line: 256"

MAX_PAYLOAD_ERR = b"-ERR 'Maximum Payload Violation'\r\n"
UNKNOWN_OP_ERR = b"-ERR 'Unknown Protocol Operation'\r\n"
# What nats-server 2.15.1 itself sends (lower case), and so the sidecar.
CONTROL_LINE_ERR = b"-ERR 'maximum control line exceeded'\r\n"


@pytest.fixture(scope="module")
def mesh(start_sidecar):
    return start_sidecar(LISTENERS)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A real nats-server with max_payload 1024 and max_control_line 256: the reference behaviour."""
    server = ConfiguredNats(tmp_path_factory.mktemp("small-nats"), SMALL_LIMITS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def small_mesh(start_sidecar, small_server):
    return start_sidecar({BEHIND_SMALL: {"subjects": GROUPS}}, broker_address=f"127.0.0.1:{small_server.port}")


def url(mesh, listener: str) -> str:
    return f"nats://127.0.0.1:{mesh.listener_port(listener)}"


async def refused(port: int, frames: bytes, connect: bytes | None = CONNECT) -> bytes:
    """Send `frames` on a fresh raw connection (after CONNECT and a PING round trip); everything received
    until the peer closes. TimeoutError if it keeps the connection open."""
    raw = await RawNats.connect(port, connect)
    try:
        if connect:
            assert await raw.ping() == []
        await raw.send(frames)
        return await raw.read_until_closed(timeout=5)
    finally:
        await raw.close()


def ready(mesh) -> str:
    with urllib.request.urlopen(f"{mesh.admin_url}/ready", timeout=2) as resp:
        return resp.read().decode().strip()


async def warning_lines(mesh, listener: str, count_before: int, n: int = 1, timeout: float = 5.0) -> list[str]:
    """The module's warning lines about `listener` that appeared after the first `count_before`."""
    pattern = re.compile(rf"\[warning\]\[dynamic_modules\].* evmesh nats\[{listener}\] connection \d+: malformed")
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in mesh.log_text().splitlines() if pattern.search(ln)][count_before:]
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.05)


def count_warnings(mesh, listener: str) -> int:
    pattern = re.compile(rf"\[warning\]\[dynamic_modules\].* evmesh nats\[{listener}\] connection \d+: malformed")
    return sum(1 for ln in mesh.log_text().splitlines() if pattern.search(ln))


def client_hello() -> bytes:
    """The first flight of a real TLS client (Python's ssl, as a TLS-first NATS client would send it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="nats.example")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100
    return hello


# ---------------------------------------------------------------- max_payload


async def test_clients_see_the_effective_max_payload(mesh, broker):
    raw_sidecar = await RawNats.connect(mesh.listener_port(TINY), connect_line=None)
    raw_direct = await RawNats.connect(broker.port, connect_line=None)
    await raw_sidecar.close()
    await raw_direct.close()
    assert raw_direct.info["max_payload"] == 1048576
    assert raw_sidecar.info["max_payload"] == 1024
    # only max_payload changed (client_id is per connection)
    for info in (raw_sidecar.info, raw_direct.info):
        info.pop("max_payload"), info.pop("client_id")
    assert raw_sidecar.info == raw_direct.info

    nc = await nats.connect(url(mesh, TINY), allow_reconnect=False)
    direct = await nats.connect(broker.url, allow_reconnect=False)
    try:
        assert nc.max_payload == 1024
        assert direct.max_payload == 1048576
        sub = await direct.subscribe("orders.sized")
        await flushed(direct)
        with pytest.raises(nats.errors.MaxPayloadError):
            await nc.publish("orders.sized", b"x" * 1025)
        await nc.publish("orders.sized", b"y" * 1024)
        await flushed(nc)
        assert (await sub.next_msg(timeout=5)).data == b"y" * 1024
        await flushed(direct)
        assert sub.pending_msgs == 0
        assert nc.is_connected
    finally:
        await nc.close()
        await direct.close()


async def test_oversized_pub_is_refused_like_nats_server_and_others_go_on(mesh, broker, small_server):
    stats = Stats(mesh, TINY)
    bystander = await Bystander.start(url(mesh, TINY), "bystander.tiny")
    direct = await nats.connect(broker.url, allow_reconnect=False)
    try:
        seen = await direct.subscribe("orders.>")
        await flushed(direct)
        before, server_before = stats.snapshot(), varz(broker)
        oversized = pub("orders.big", b"z" * 1025)
        reference = await refused(small_server.port, oversized)
        assert reference == MAX_PAYLOAD_ERR
        assert await refused(mesh.listener_port(TINY), oversized) == reference
        await bystander.wait_sent(5)
        await flushed(direct)
        assert seen.pending_msgs == 0, "the oversized message reached nats-server"
        in_msgs = varz(broker)["in_msgs"] - server_before["in_msgs"]
    finally:
        await bystander.stop()
        await direct.close()
    assert in_msgs > 0
    delta = await stats.wait_delta(before, {"payload_too_large": 1})
    assert delta.get("payload_too_large") == 1, delta
    assert "c2s.protocol_errors" not in delta, "an oversized PUB is a payload violation, not a malformed frame"
    assert not only(delta, ["subject.orders."]), delta
    assert delta["connections_total"] == 1


async def test_server_limit_below_the_filters_is_enforced_by_the_filter(small_mesh, small_server):
    """Filter default 1 MiB, server 1024: clients see 1024 (the server's INFO), and the sidecar refuses a
    bigger PUB itself, the way the server would."""
    stats = Stats(small_mesh, BEHIND_SMALL)
    before = stats.snapshot()
    raw = await RawNats.connect(small_mesh.listener_port(BEHIND_SMALL), connect_line=None)
    await raw.close()
    assert raw.info["max_payload"] == 1024
    oversized = pub("orders.big", b"z" * 2000)
    reference = await refused(small_server.port, oversized)
    assert reference == MAX_PAYLOAD_ERR
    assert await refused(small_mesh.listener_port(BEHIND_SMALL), oversized) == reference
    delta = await stats.wait_delta(before, {"payload_too_large": 1})
    assert delta.get("payload_too_large") == 1, delta
    assert "c2s.protocol_errors" not in delta
    assert not only(delta, ["subject."]), delta


async def test_frames_before_an_oversized_pub_in_the_same_segment_still_reach_the_server(mesh, broker, small_server):
    """nats-server handles every frame before the violation; so must the sidecar (and count what it forwards)."""
    frames = pub("orders.before", b"ok") + pub("orders.big", b"z" * 1025)
    ref_direct = await nats.connect(f"nats://127.0.0.1:{small_server.port}", allow_reconnect=False)
    direct = await nats.connect(broker.url, allow_reconnect=False)
    stats = Stats(mesh, TINY)
    before = stats.snapshot()
    try:
        ref_sub = await ref_direct.subscribe("orders.>")
        sub = await direct.subscribe("orders.>")
        await flushed(ref_direct)
        await flushed(direct)
        reference = await refused(small_server.port, frames)
        assert reference == MAX_PAYLOAD_ERR
        assert (await ref_sub.next_msg(timeout=5)).data == b"ok", "nats-server delivers the frame before"
        assert await refused(mesh.listener_port(TINY), frames) == reference
        msg = await sub.next_msg(timeout=2)
        assert (msg.subject, msg.data) == ("orders.before", b"ok")
    finally:
        await ref_direct.close()
        await direct.close()
    delta = await stats.wait_delta(before, {"payload_too_large": 1})
    assert only(delta, ["subject.orders.", "payload_too_large"]) == {
        "subject.orders.published_msgs": 1, "subject.orders.published_bytes": 2, "payload_too_large": 1,
    }


# ---------------------------------------------------------------- malformed traffic


async def test_garbage_closes_only_that_connection(mesh, broker):
    stats = Stats(mesh, LINE)
    warnings_before = count_warnings(mesh, LINE)
    bystander = await Bystander.start(url(mesh, LINE), "bystander.garbage")
    try:
        before = stats.snapshot()
        reference = await refused(broker.port, b"FOO BAR\r\n")
        assert reference == UNKNOWN_OP_ERR
        assert await refused(mesh.listener_port(LINE), b"FOO BAR\r\n") == reference
        await bystander.wait_sent(5)
        assert ready(mesh) == "LIVE"
    finally:
        await bystander.stop()
    delta = await stats.wait_delta(before, {"c2s.protocol_errors": 1})
    assert delta.get("c2s.protocol_errors") == 1, delta
    assert "s2c.protocol_errors" not in delta
    assert ready(mesh) == "LIVE"
    offset = len(CONNECT) + len(b"PING\r\n")
    lines = await warning_lines(mesh, LINE, warnings_before)
    assert len(lines) == 1, lines
    assert re.search(
        rf"evmesh nats\[{LINE}\] connection \d+: malformed client-to-server frame at offset {offset}: "
        r"unknown protocol operation; near 'FOO BAR\\x0d\\x0a'; closing the connection$", lines[0]), lines[0]


async def test_tls_client_hello_is_refused_like_nats_server(mesh, broker):
    stats = Stats(mesh, LINE)
    warnings_before = count_warnings(mesh, LINE)
    bystander = await Bystander.start(url(mesh, LINE), "bystander.tls")
    hello = client_hello()
    try:
        before = stats.snapshot()
        reference = await refused(broker.port, hello, connect=None)
        assert reference == UNKNOWN_OP_ERR
        assert await refused(mesh.listener_port(LINE), hello, connect=None) == reference
        await bystander.wait_sent(5)
        assert ready(mesh) == "LIVE"
    finally:
        await bystander.stop()
    delta = await stats.wait_delta(before, {"c2s.protocol_errors": 1})
    assert delta.get("c2s.protocol_errors") == 1, delta
    lines = await warning_lines(mesh, LINE, warnings_before)
    assert len(lines) == 1 and " malformed client-to-server frame at offset 0: " in lines[0], lines
    assert "near '\\x16\\x03" in lines[0], lines[0]


@pytest.mark.parametrize("line_end", [b" 1\r\nx\r\n", b""], ids=["with-line-end", "no-line-end-yet"])
async def test_control_line_over_max_control_line(mesh, line_end):
    """Refused as soon as the line is longer than the limit, whether or not its end has arrived."""
    stats = Stats(mesh, LINE)
    warnings_before = count_warnings(mesh, LINE)
    bystander = await Bystander.start(url(mesh, LINE), "bystander.line")
    try:
        before = stats.snapshot()
        frame = b"PUB orders." + b"a" * 300 + line_end
        assert await refused(mesh.listener_port(LINE), frame) == CONTROL_LINE_ERR
        await bystander.wait_sent(5)
        assert ready(mesh) == "LIVE"
    finally:
        await bystander.stop()
    delta = await stats.wait_delta(before, {"c2s.protocol_errors": 1})
    assert delta.get("c2s.protocol_errors") == 1, delta
    assert not only(delta, ["subject.orders."]), delta
    lines = await warning_lines(mesh, LINE, warnings_before)
    assert len(lines) == 1 and ": control line too long; near 'PUB orders.aaaa" in lines[0], lines


async def test_control_line_at_the_limit_passes(mesh, broker):
    """The limit counts the whole line including CRLF: exactly 256 bytes is fine."""
    subject = "orders." + "b" * (256 - len("PUB orders. 1\r\n"))
    frame = pub(subject, b"x")
    assert frame.index(b"\r\n") + 2 == 256
    direct = await nats.connect(broker.url, allow_reconnect=False)
    raw = await RawNats.connect(mesh.listener_port(LINE))
    try:
        sub = await direct.subscribe(subject)
        await flushed(direct)
        await raw.send(frame)
        assert await raw.ping() == []
        assert (await sub.next_msg(timeout=5)).data == b"x"
    finally:
        await raw.close()
        await direct.close()


async def test_frames_before_garbage_in_the_same_segment_still_reach_the_server(mesh, broker):
    """nats-server delivers the PUB that precedes the bad line; so must the sidecar."""
    direct = await nats.connect(broker.url, allow_reconnect=False)
    try:
        sub = await direct.subscribe("orders.>")
        await flushed(direct)
        frames = pub("orders.first", b"1") + b"FOO BAR\r\n"
        reference = await refused(broker.port, frames)
        assert reference == UNKNOWN_OP_ERR
        assert (await sub.next_msg(timeout=5)).subject == "orders.first", "nats-server delivers the PUB before"
        assert await refused(mesh.listener_port(LINE), frames) == reference
        msg = await sub.next_msg(timeout=2)
        assert (msg.subject, msg.data) == ("orders.first", b"1")
    finally:
        await direct.close()
