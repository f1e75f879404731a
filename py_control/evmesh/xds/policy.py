"""The live-policy channel: the policy documents of a spec, long-polled by the evmesh module over HTTP/1.1.

    GET /v1/policies?version=<v>&wait=<s>[&applied=<v>][&rejected=<name>&error=<text>]
    -> 200 application/json {"version": "<content hash>", "policies": {"<listener>": {<policy keys>}}}

answered at once when the current version differs from <v> (or <v> is absent or empty), else held until
the version changes or <wait> seconds pass (at most 60; absent: 0), then answered with the unchanged
document. One request per connection; every answer has Content-Length and `Connection: close`.
`applied=<v>` is the module's ACK (logged at INFO once per version); `rejected=<name>&error=<text>` its
NACK of one listener's policy in version <v> (logged at WARNING once per version and listener). A NACKed
version is never resent: the document changes only with the spec. Bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("evmesh.xds")
PATH = "/v1/policies"
MAX_WAIT_S = 60.0
MAX_REQUEST_BYTES = 16384
REQUEST_TIMEOUT_S = 10.0
_REMEMBERED = 1024  # ACKed versions / NACKs remembered for "log once"


@dataclass(frozen=True)
class PolicySet:
    """Immutable policy documents by listener name, with a content version."""

    policies: Mapping[str, Mapping[str, Any]]
    version: str
    body: bytes  # the JSON answer

    @staticmethod
    def of(policies: Mapping[str, Mapping[str, Any]]) -> PolicySet:
        canonical = json.dumps(policies, sort_keys=True, separators=(",", ":"))
        version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        body = json.dumps({"version": version, "policies": policies}, sort_keys=True, separators=(",", ":"))
        return PolicySet(json.loads(canonical), version, body.encode())


@dataclass(frozen=True)
class PolicyEvent:
    """What a module reported: kind "ack" (version) or "nack" (version, listener, error); "served"."""

    kind: str
    version: str
    listener: str = ""
    error: str = ""
    peer: str = ""


class PolicyStore:
    """The current PolicySet. set() from any thread; waiters on the server's loop are woken at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: PolicySet | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    @property
    def current(self) -> PolicySet | None:
        with self._lock:
            return self._current

    def set(self, policies: Mapping[str, Mapping[str, Any]] | PolicySet) -> PolicySet:
        new = policies if isinstance(policies, PolicySet) else PolicySet.of(policies)
        with self._lock:
            if self._current is not None and self._current.version == new.version:
                return self._current
            self._current = new
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop is closed
                pass
        return new

    async def changed_from(self, version: str, timeout: float) -> PolicySet | None:
        """The current set once its version differs from `version`, or after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                cur = self._current
                if cur is not None and cur.version != version:
                    return cur
                left = deadline - loop.time()
                if left <= 0:
                    return cur
                fut = loop.create_future()
                self._waiters.append((loop, fut))
            try:
                await asyncio.wait_for(fut, left)
            except TimeoutError:
                with self._lock:
                    self._waiters = [w for w in self._waiters if w[1] is not fut]


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason = status, reason


def _response(status: int, reason: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class PolicyServer:
    """HTTP/1.1 long-poll server for a PolicyStore (raw asyncio streams; one request per connection)."""

    def __init__(self, store: PolicyStore):
        self.store = store
        self.port: int | None = None
        self.events: list[PolicyEvent] = []
        self._observers: list[Callable[[PolicyEvent], None]] = []
        self._server: asyncio.Server | None = None
        self._acked: dict[str, None] = {}
        self._nacked: dict[tuple[str, str], None] = {}
        self._handlers: set[asyncio.Task] = set()

    def observe(self, callback: Callable[[PolicyEvent], None]) -> None:
        self._observers.append(callback)

    def _emit(self, event: PolicyEvent) -> None:
        self.events.append(event)
        del self.events[:-_REMEMBERED]
        for cb in list(self._observers):
            try:
                cb(event)
            except Exception:
                log.exception("policy observer failed")

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True,
                                                  limit=MAX_REQUEST_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("policy server listening on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        peer_s = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            try:
                target = await asyncio.wait_for(self._read_request(reader), REQUEST_TIMEOUT_S)
                answer = await self._answer(target, peer_s)
            except _BadRequest as exc:
                answer = _response(exc.status, exc.reason, (str(exc) + "\n").encode(), "text/plain")
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._handlers.discard(task)

    async def _read_request(self, reader: asyncio.StreamReader) -> str:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _BadRequest(431, "Request Header Fields Too Large", "request head too large") from None
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, "Bad Request", f"not an HTTP/1.x request line: {line[:80]!r}")
        method, target, _ = parts
        if method != "GET":
            raise _BadRequest(405, "Method Not Allowed", f"{method}: only GET {PATH}")
        return target

    async def _answer(self, target: str, peer: str) -> bytes:
        url = urlsplit(target)
        if url.path != PATH:
            raise _BadRequest(404, "Not Found", f"{url.path}: not found (GET {PATH})")
        q = parse_qs(url.query, keep_blank_values=True)
        version = q.get("version", [""])[-1]
        try:
            wait = float(q.get("wait", ["0"])[-1] or 0)
        except ValueError:
            raise _BadRequest(400, "Bad Request", "wait: not a number of seconds") from None
        if not wait >= 0:
            raise _BadRequest(400, "Bad Request", "wait: must be >= 0")
        wait = min(wait, MAX_WAIT_S)
        for applied in q.get("applied", []):
            self._report_ack(applied, peer)
        for name, error in zip(q.get("rejected", []), q.get("error", []) + [""] * len(q.get("rejected", [])),
                               strict=False):
            self._report_nack(version, name, error, peer)
        current = self.store.current
        if current is None:
            raise _BadRequest(503, "Service Unavailable", "no policy published yet")
        if version and version == current.version and wait > 0:
            started = time.monotonic()
            current = await self.store.changed_from(version, wait) or current
            log.debug("policy long-poll from %s answered after %.3fs", peer, time.monotonic() - started)
        self._emit(PolicyEvent("served", current.version, peer=peer))
        return _response(200, "OK", current.body)

    def _report_ack(self, version: str, peer: str) -> None:
        if not version or version in self._acked:
            return
        self._acked[version] = None
        while len(self._acked) > _REMEMBERED:
            del self._acked[next(iter(self._acked))]
        log.info("policy ACK version %s", version)
        self._emit(PolicyEvent("ack", version, peer=peer))

    def _report_nack(self, version: str, name: str, error: str, peer: str) -> None:
        key = (version, name)
        if key in self._nacked:
            return
        self._nacked[key] = None
        while len(self._nacked) > _REMEMBERED:
            del self._nacked[next(iter(self._nacked))]
        log.warning("policy NACK version %s for %s: %s", version or "-", name, error or "(no reason given)")
        self._emit(PolicyEvent("nack", version, name, error, peer))
