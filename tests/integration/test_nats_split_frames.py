"""Frames split across reads at every possible byte: the sidecar forwards exactly the allowed frames,
byte for byte and in order, drops exactly the denied ones (payload included), and answers one -ERR each.
A raw subscriber connected straight to nats-server sees what really went through.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from natsutil import RawNats, Stats, only, perm_pub, varz

SPLIT = "split"
LISTENERS = {
    SPLIT: {
        "acl": {"publish": {"allow": ["split.>"], "deny": ["split.secret.>"]}},
        "subjects": [{"name": "secret", "pattern": "split.secret.>"}, {"name": "split", "pattern": "split.>"}],
    },
}


@pytest.fixture(scope="module")
def mesh(start_sidecar):
    return start_sidecar(LISTENERS)


@dataclass(frozen=True)
class Frame:
    subject: str
    payload: bytes
    reply: str | None = None
    headers: bytes | None = None  # HPUB when set

    @property
    def allowed(self) -> bool:
        return not self.subject.startswith("split.secret.")

    @property
    def size(self) -> int:
        return len(self.headers or b"") + len(self.payload)

    def wire(self) -> bytes:
        """As the client sends it."""
        reply = f" {self.reply}" if self.reply else ""
        if self.headers is None:
            return f"PUB {self.subject}{reply} {self.size}\r\n".encode() + self.payload + b"\r\n"
        return (f"HPUB {self.subject}{reply} {len(self.headers)} {self.size}\r\n".encode()
                + self.headers + self.payload + b"\r\n")

    def delivered(self, sid: int) -> bytes:
        """As nats-server delivers it to a subscription `sid`."""
        reply = f" {self.reply}" if self.reply else ""
        if self.headers is None:
            return f"MSG {self.subject} {sid}{reply} {self.size}\r\n".encode() + self.payload + b"\r\n"
        return (f"HMSG {self.subject} {sid}{reply} {len(self.headers)} {self.size}\r\n".encode()
                + self.headers + self.payload + b"\r\n")


HDR = b"NATS/1.0\r\nX-Key: v\r\n\r\n"
WORKLOAD = [
    Frame("split.a", b"hello"),
    Frame("split.secret.a", b"hidden"),
    Frame("split.b", b"", reply="_INBOX.r1"),
    Frame("split.secret.b", b"PUB split.fake 3\r\nabc\r\n"),  # frames inside a denied payload are payload
    Frame("split.c", b"line1\r\nline2\r\n\r\n"),
    Frame("split.secret.c", b""),
    Frame("split.d", bytes(range(256))),
    Frame("split.e", b"with headers", headers=HDR),
    Frame("split.secret.e", b"denied headers", reply="_INBOX.r2", headers=HDR),
    Frame("split.secret.f", b"x" * 40),
    Frame("split.secret.g", b"y" * 3),  # two denied frames in a row
    Frame("split.f", b"PING\r\n-ERR 'fake'\r\n", reply="_INBOX.r3"),
    Frame("split.secret.h", b"last denied"),
    Frame("split.g", b"the end"),
]


async def watcher(broker) -> RawNats:
    """A raw subscriber on split.> connected straight to nats-server."""
    raw = await RawNats.connect(broker.port)
    await raw.send(b"SUB split.> 1\r\n")
    assert await raw.ping() == []
    return raw


async def run_workload(mesh, broker, frames: list[Frame], send) -> None:
    stats = Stats(mesh, SPLIT)
    direct = await watcher(broker)
    client = await RawNats.connect(mesh.listener_port(SPLIT))
    assert await client.ping() == []
    before, server_before = stats.snapshot(), varz(broker)
    try:
        await send(client, b"".join(f.wire() for f in frames))
        errs = await client.ping(timeout=10)
        assert errs == [perm_pub(f.subject) for f in frames if not f.allowed]
        expected = b"".join(f.delivered(1) for f in frames if f.allowed)
        got = await asyncio.wait_for(direct.reader.readexactly(len(expected)), 5)
        assert got == expected
        assert await direct.ping() == [], "nothing else reached the subscriber"
    finally:
        await client.close()
        await direct.close()
    allowed = [f for f in frames if f.allowed]
    server_after = varz(broker)
    assert server_after["in_msgs"] - server_before["in_msgs"] == len(allowed)
    assert server_after["in_bytes"] - server_before["in_bytes"] == sum(f.size for f in allowed)
    delta = await stats.wait_delta(before, {"subject.split.published_msgs": len(allowed)})
    assert only(delta, ["subject."]) == {
        "subject.split.published_msgs": len(allowed),
        "subject.split.published_bytes": sum(f.size for f in allowed),
        "subject.secret.publish_denied": len(frames) - len(allowed),
    }
    assert "c2s.protocol_errors" not in delta


async def test_all_in_one_segment(mesh, broker):
    await run_workload(mesh, broker, WORKLOAD, lambda c, data: c.send(data))


async def test_one_byte_at_a_time(mesh, broker):
    await run_workload(mesh, broker, WORKLOAD, lambda c, data: c.send_bytewise(data))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_random_chunks(mesh, broker, seed):
    rng = random.Random(seed)
    frames = WORKLOAD[:]
    rng.shuffle(frames)
    await run_workload(mesh, broker, frames, lambda c, data: c.send_chunked(data, rng, max_chunk=rng.choice([3, 17, 64])))


async def test_large_denied_payload_over_many_reads(mesh, broker):
    """200 KiB of a denied PUB (with frame-like text inside) arrive in many reads; not one byte of it
    reaches nats-server, and the allowed PUB right behind it does."""
    rng = random.Random(7)
    bait = b"\r\nPUB split.bait 3\r\nabc\r\n"
    denied = Frame("split.secret.big", (bait + bytes(rng.getrandbits(8) for _ in range(1000))) * 200)
    assert len(denied.payload) > 200 * 1024
    frames = [denied, Frame("split.after", b"allowed after the big one")]
    await run_workload(mesh, broker, frames,
                       lambda c, data: c.send_chunked(data, rng, max_chunk=4096, delay=0.0002))


async def test_large_allowed_payload_over_many_reads_then_denied(mesh, broker):
    rng = random.Random(8)
    frames = [Frame("split.big", bytes(rng.getrandbits(8) for _ in range(200 * 1024))),
              Frame("split.secret.after", b"denied after the big one"),
              Frame("split.tail", b"tail")]
    await run_workload(mesh, broker, frames,
                       lambda c, data: c.send_chunked(data, rng, max_chunk=4096, delay=0.0002))
