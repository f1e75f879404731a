"""The ADS server (state of the world and Delta) on grpcio asyncio, over a SnapshotCache.

Semantics follow go-control-plane's pkg/server/v3:
- per stream and type: a version and a nonce per response; one response outstanding per type; a
  request whose nonce is not the latest one sent is stale and ignored (Delta: its subscription
  changes still apply);
- ACK (the latest nonce, no error_detail) moves the type's "acked" view forward; NACK logs Envoy's
  error_detail and keeps the last acked view; the rejected version is never sent again (it is the
  last sent one, and a response goes out only when the desired view differs from it);
- resource-name subscriptions (SotW resource_names, Delta subscribe/unsubscribe) and wildcard ("*",
  or an empty first request);
- make before break: a listener is sent only after the clusters it needs are ACKed (CDS before LDS);
  a cluster that a listener Envoy may still hold refers to stays in CDS until the LDS update that
  drops that listener is ACKed.

Versions are content hashes, so a reconnecting Envoy whose version (SotW version_info, Delta
initial_resource_versions) matches the snapshot is not sent anything again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from .cache import Snapshot, SnapshotCache, view_version
from .resources import CLUSTER_TYPE, LISTENER_TYPE, Resource, short_type

log = logging.getLogger("evmesh.xds")
_TYPE_ORDER = {CLUSTER_TYPE: 0, LISTENER_TYPE: 1}


@dataclass(frozen=True)
class XdsEvent:
    """What happened on a stream: sent, ack, nack, stale, synced, connected, closed."""

    kind: str
    stream: str  # "sotw" | "delta"
    node_id: str
    key: str
    type_url: str = ""
    version: str = ""
    label: str = ""
    detail: str = ""
    count: int = 0


@dataclass
class _TypeState:
    type_url: str
    subscribed: bool = False
    legacy_wildcard: bool = False
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    nonce: str = ""
    awaiting: bool = False  # a response is out, its ACK/NACK has not come
    first_response_due: bool = False  # Delta: answer a first request even with nothing to send
    sent: dict[str, Resource] = field(default_factory=dict)  # SotW: last view sent; Delta: what the client has
    sent_version: str | None = None
    sent_label: str = ""
    claimed_version: str | None = None  # SotW: the version_info of a (re)connecting client
    acked: dict[str, Resource] = field(default_factory=dict)
    acked_version: str | None = None
    acked_label: str = ""
    maybe: dict[str, Resource] = field(default_factory=dict)  # sent since the last ACK (may be applied)
    nacked_version: str | None = None
    last_error: str = ""
    pending_upserts: dict[str, Resource] = field(default_factory=dict)
    pending_removals: tuple[str, ...] = ()
    held: str = ""  # why the desired view is held back (logged once per reason)


def _placeholder(type_url: str, name: str, version: str) -> Resource:
    """A resource the client says it has (Delta initial_resource_versions): only name and version."""
    return Resource(name, type_url, None, None, version)  # type: ignore[arg-type]


class _Stream:
    kind = "sotw"

    def __init__(self, server: AdsServer, peer: str):
        self.server = server
        self.peer = peer
        self.node = None
        self.node_id = ""
        self.key = ""
        self.snapshot: Snapshot | None = None
        self.synced_label = ""  # the label of the last snapshot this stream was synced to
        self.types: dict[str, _TypeState] = {}
        self._nonces = itertools.count(1)
        self._cancel_watch: Callable[[], None] | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    # ---- plumbing -------------------------------------------------------------------------------

    def _state(self, type_url: str) -> _TypeState:
        st = self.types.get(type_url)
        if st is None:
            st = self.types[type_url] = _TypeState(type_url)
        return st

    def _emit(self, kind: str, st: _TypeState | None = None, **kw) -> None:
        self.server._emit(XdsEvent(kind, self.kind, self.node_id, self.key, st.type_url if st else "", **kw))

    def _who(self) -> str:
        return f"node {self.node_id or '?'} ({self.kind}, key {self.key or '?'})"

    def _attach(self, node) -> None:
        self.node = node
        self.node_id = node.id
        self.key = self.server.cache.node_key(node)
        self._cancel_watch = self.server.cache.watch(self.key, self._on_snapshot)
        self.snapshot = self.server.cache.get_snapshot(self.key)
        log.info("%s connected from %s%s", self._who(), self.peer, "" if self.snapshot else "; no snapshot yet, waiting")
        self._emit("connected")

    def _on_snapshot(self, snapshot: Snapshot | None) -> None:  # any thread
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, ("snapshot", snapshot))
        except RuntimeError:  # the server's loop is closed: the stream is gone
            pass

    async def _read(self, requests: AsyncIterator) -> None:
        try:
            async for req in requests:
                self._queue.put_nowait(("request", req))
        except (asyncio.CancelledError, grpc.RpcError, Exception) as exc:  # client went away
            log.debug("%s: request stream ended: %r", self._who(), exc)
        finally:
            self._queue.put_nowait(("end", None))

    async def run(self, requests: AsyncIterator) -> AsyncIterator:
        reader = asyncio.create_task(self._read(requests))
        self.server._streams.add(self)
        try:
            while True:
                kind, item = await self._queue.get()
                if kind == "end":
                    break
                if kind == "snapshot":
                    self.snapshot = item
                else:
                    if self.node is None:
                        if not item.HasField("node"):
                            log.warning("stream from %s: first request without a node; ignored", self.peer)
                            continue
                        self._attach(item.node)
                    self.handle(item)
                for resp in self.evaluate():
                    yield resp
        finally:
            reader.cancel()
            if self._cancel_watch:
                self._cancel_watch()
            self.server._streams.discard(self)
            if self.node is not None:
                log.info("%s disconnected", self._who())
                self._emit("closed")

    # ---- shared semantics ---------------------------------------------------------------------------

    def _order(self) -> list[str]:
        return sorted(self.types, key=lambda t: (_TYPE_ORDER.get(t, 2), t))

    def desired(self, type_url: str) -> dict[str, Resource] | None:
        """What the client should hold now for this type; None = hold back (dependencies not ACKed)."""
        snap = self.snapshot
        st = self.types[type_url]
        if snap is None:
            return None
        want = snap.get(type_url)
        if type_url == CLUSTER_TYPE and LISTENER_TYPE in self.types:
            lds = self.types[LISTENER_TYPE]
            refs: set[str] = set()
            for r in (*lds.acked.values(), *lds.maybe.values()):
                refs |= r.depends_on
            kept = {}
            for name in sorted(refs - want.keys()):
                old = st.acked.get(name) or st.maybe.get(name) or st.sent.get(name)
                if old is not None:
                    kept[name] = old
            if kept:
                want = dict(sorted({**want, **kept}.items()))
        if not st.wildcard:
            want = {n: want[n] for n in sorted(st.names) if n in want}
        if type_url == LISTENER_TYPE:
            cds = self.types.get(CLUSTER_TYPE)
            if cds is not None and cds.subscribed:
                need: set[str] = set()
                for r in want.values():
                    need |= r.depends_on
                missing = sorted(need - cds.acked.keys())
                if missing:
                    reason = f"waiting for the CDS ACK of {', '.join(missing)}"
                    if st.held != reason:
                        log.info("%s: LDS held back: %s", self._who(), reason)
                        st.held = reason
                    return None
        st.held = ""
        return want

    def _version_of(self, type_url: str, view: dict[str, Resource]) -> str:
        snap = self.snapshot
        if snap is not None and view is snap.get(type_url):
            return snap.version(type_url)
        return view_version(view)

    def _next_nonce(self) -> str:
        return str(next(self._nonces))

    def _ack_or_nack(self, st: _TypeState, error_detail) -> None:
        st.awaiting = False
        if error_detail.code or error_detail.message:
            st.nacked_version = st.sent_version
            st.last_error = error_detail.message
            log.warning(
                "%s: %s NACK of version %s (nonce %s, snapshot %s): %s",
                self._who(), short_type(st.type_url), st.sent_version, st.nonce, st.sent_label, error_detail.message,
            )
            self._emit("nack", st, version=st.sent_version or "", label=st.sent_label, detail=error_detail.message)
            return
        self._apply_ack(st)
        st.acked_version = st.sent_version
        st.acked_label = st.sent_label
        st.maybe = {}
        log.info("%s: %s ACK of version %s (snapshot %s)", self._who(), short_type(st.type_url), st.acked_version, st.acked_label)
        self._emit("ack", st, version=st.acked_version or "", label=st.acked_label, count=len(st.acked))

    def _apply_ack(self, st: _TypeState) -> None:
        st.acked = dict(st.sent)

    def _maybe_synced(self) -> None:
        if self.snapshot is None:
            return
        subscribed = [st for st in self.types.values() if st.subscribed]
        if not subscribed:
            return
        for st in subscribed:
            if st.awaiting:
                return
            want = self.desired(st.type_url)
            if want is None or self._version_of(st.type_url, want) != st.acked_version:
                return
        self.synced_label = self.snapshot.label
        self._emit("synced", label=self.snapshot.label)

    def handle(self, req) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluate(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError


class _SotwStream(_Stream):
    kind = "sotw"

    def handle(self, req: discovery_pb2.DiscoveryRequest) -> None:
        st = self._state(req.type_url)
        names = set(req.resource_names)
        if st.subscribed and req.response_nonce and req.response_nonce != st.nonce:
            log.info("%s: %s stale nonce %s (latest %s) ignored", self._who(), short_type(st.type_url), req.response_nonce, st.nonce)
            self._emit("stale", st, detail=req.response_nonce)
            return
        if not st.subscribed:
            st.subscribed = True
            st.legacy_wildcard = not names
            if req.version_info:
                st.claimed_version = req.version_info
        elif req.response_nonce and st.awaiting:
            was_ack = not (req.error_detail.code or req.error_detail.message)
            self._ack_or_nack(st, req.error_detail)
            if was_ack:
                self._maybe_synced()
        elif req.response_nonce:
            pass  # the latest nonce again, already answered: a subscription change (names below)
        else:
            st.awaiting = False  # a fresh request: the client is open to a response again
        st.wildcard = "*" in names or (st.legacy_wildcard and not names)
        st.names = names - {"*"}

    def evaluate(self) -> list[discovery_pb2.DiscoveryResponse]:
        out = []
        for type_url in self._order():
            st = self.types[type_url]
            if not st.subscribed or st.awaiting:
                continue
            want = self.desired(type_url)
            if want is None:
                continue
            version = self._version_of(type_url, want)
            if st.claimed_version is not None:
                claimed, st.claimed_version = st.claimed_version, None
                if claimed == version:
                    st.sent = st.acked = dict(want)
                    st.sent_version = st.acked_version = version
                    st.sent_label = st.acked_label = self.snapshot.label if self.snapshot else ""
                    log.info("%s: %s resumed at version %s, nothing to send", self._who(), short_type(type_url), version)
                    self._emit("resumed", st, version=version)
                    continue
            if version == st.sent_version:
                continue
            st.nonce = self._next_nonce()
            st.awaiting = True
            st.sent = dict(want)
            st.sent_version = version
            st.sent_label = self.snapshot.label if self.snapshot else ""
            st.maybe.update(want)
            resp = discovery_pb2.DiscoveryResponse(
                version_info=version, type_url=type_url, nonce=st.nonce, resources=[r.packed for r in want.values()]
            )
            log.info("%s: %s version %s sent (%d resources, nonce %s, snapshot %s)",
                     self._who(), short_type(type_url), version, len(want), st.nonce, st.sent_label)
            self._emit("sent", st, version=version, label=st.sent_label, count=len(want))
            out.append(resp)
        return out


class _DeltaStream(_Stream):
    kind = "delta"

    def _apply_ack(self, st: _TypeState) -> None:
        for name in st.pending_removals:
            st.acked.pop(name, None)
        st.acked.update(st.pending_upserts)
        st.pending_upserts, st.pending_removals = {}, ()

    def handle(self, req: discovery_pb2.DeltaDiscoveryRequest) -> None:
        st = self._state(req.type_url)
        if req.response_nonce:
            if req.response_nonce != st.nonce:
                log.info("%s: %s stale nonce %s (latest %s): not an ACK/NACK", self._who(), short_type(st.type_url),
                         req.response_nonce, st.nonce)
                self._emit("stale", st, detail=req.response_nonce)
            elif st.awaiting:
                was_ack = not (req.error_detail.code or req.error_detail.message)
                self._ack_or_nack(st, req.error_detail)
                if was_ack:
                    self._maybe_synced()
        subscribe = list(req.resource_names_subscribe)
        if not st.subscribed:
            st.subscribed = True
            st.first_response_due = True
            st.legacy_wildcard = not subscribe
            st.wildcard = st.legacy_wildcard
            if req.initial_resource_versions:
                claims = {n: _placeholder(st.type_url, n, v) for n, v in req.initial_resource_versions.items()}
                st.sent = dict(claims)
                st.acked = dict(claims)
        for name in subscribe:
            if name == "*":
                st.wildcard = True
            else:
                st.names.add(name)
        for name in req.resource_names_unsubscribe:
            if name == "*":
                st.wildcard = False
                st.legacy_wildcard = False
            else:
                st.names.discard(name)
            if not st.wildcard:
                # the client forgets an unsubscribed resource by itself: no removal is sent for it
                for gone in [n for n in st.sent if n not in st.names]:
                    st.sent.pop(gone, None)
                    st.acked.pop(gone, None)

    def evaluate(self) -> list[discovery_pb2.DeltaDiscoveryResponse]:
        out = []
        for type_url in self._order():
            st = self.types[type_url]
            if not st.subscribed or st.awaiting:
                continue
            want = self.desired(type_url)
            if want is None:
                continue
            upserts = {n: r for n, r in want.items() if n not in st.sent or st.sent[n].version != r.version}
            removals = tuple(n for n in st.sent if n not in want)
            if not upserts and not removals and not st.first_response_due:
                continue
            st.first_response_due = False
            version = self._version_of(type_url, want)
            st.nonce = self._next_nonce()
            st.awaiting = True
            st.sent = dict(want)
            st.sent_version = version
            st.sent_label = self.snapshot.label if self.snapshot else ""
            st.pending_upserts, st.pending_removals = upserts, removals
            st.maybe.update(upserts)
            resp = discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=version,
                type_url=type_url,
                nonce=st.nonce,
                resources=[
                    discovery_pb2.Resource(name=r.name, version=r.version, resource=r.packed) for r in upserts.values()
                ],
                removed_resources=list(removals),
            )
            log.info("%s: %s version %s sent (%d upserts, %d removals, nonce %s, snapshot %s)",
                     self._who(), short_type(type_url), version, len(upserts), len(removals), st.nonce, st.sent_label)
            self._emit("sent", st, version=version, label=st.sent_label, count=len(upserts) + len(removals))
            out.append(resp)
        return out


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """ADS (SotW + Delta) for every node, from `cache`. start()/stop() run a grpc.aio server."""

    def __init__(self, cache: SnapshotCache):
        self.cache = cache
        self._streams: set[_Stream] = set()
        self._observers: list[Callable[[XdsEvent], None]] = []
        self._grpc: grpc.aio.Server | None = None
        self.port: int | None = None

    # ---- observation (tests, benchmarks, the CLI) ---------------------------------------------------

    def observe(self, callback: Callable[[XdsEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` (on the server's loop) for every XdsEvent; returns the cancel function."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def _emit(self, event: XdsEvent) -> None:
        for cb in list(self._observers):
            try:
                cb(event)
            except Exception:  # an observer must not break a stream
                log.exception("xds observer failed")

    def status(self) -> list[dict]:
        """Per connected stream: node, key, kind and per type the sent/acked/nacked versions."""
        out = []
        for s in sorted(self._streams, key=lambda s: (s.node_id, s.kind)):
            out.append({
                "node_id": s.node_id, "key": s.key, "stream": s.kind, "peer": s.peer,
                "types": {
                    short_type(t): {
                        "sent": st.sent_version, "acked": st.acked_version, "acked_snapshot": st.acked_label,
                        "nacked": st.nacked_version, "error": st.last_error, "awaiting_ack": st.awaiting,
                        "wildcard": st.wildcard, "names": sorted(st.names), "held": st.held,
                    }
                    for t, st in s.types.items()
                },
            })
        return out

    def has_streams(self, key: str) -> bool:
        """True when a node of key `key` has an open stream."""
        return any(s.key == key for s in self._streams)

    def synced(self, key: str, label: str) -> bool:
        """True when every open stream of node key `key` has ACKed snapshot `label` (or none is open)."""
        return all(s.synced_label == label for s in self._streams if s.key == key)

    # ---- the gRPC service -----------------------------------------------------------------------------

    async def StreamAggregatedResources(self, request_iterator, context):  # noqa: N802 - gRPC name
        stream = _SotwStream(self, context.peer())
        async for resp in stream.run(request_iterator):
            yield resp

    async def DeltaAggregatedResources(self, request_iterator, context):  # noqa: N802 - gRPC name
        stream = _DeltaStream(self, context.peer())
        async for resp in stream.run(request_iterator):
            yield resp

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on host:port (0 = a free port); returns the port."""
        self._grpc = grpc.aio.server(options=[
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self, self._grpc)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._grpc.add_insecure_port(target)
        if not self.port:
            raise OSError(f"cannot listen on {target}")
        await self._grpc.start()
        log.info("ADS server listening on %s:%d", host, self.port)
        return self.port

    async def stop(self, grace: float | None = 0.5) -> None:
        """Stop taking new streams, end every open one cleanly (status OK: Envoy keeps its config and
        reconnects later), then stop; a stream still open after `grace` seconds is cancelled."""
        if self._grpc is None:
            return
        server, self._grpc = self._grpc, None
        stopping = asyncio.ensure_future(server.stop(grace))
        await asyncio.sleep(0)  # the server refuses new RPCs from here on
        for stream in list(self._streams):
            stream._queue.put_nowait(("end", None))
        await stopping


def resources_by_type(snapshot: Snapshot) -> dict[str, Iterable[Resource]]:
    return {t: list(v.values()) for t, v in snapshot.resources.items()}
