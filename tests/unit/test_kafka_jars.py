"""evmesh.runtime.kafka's jar cache and its error messages (no JVM, no Maven download)."""

from __future__ import annotations

import os
import shutil
import struct
import threading
from pathlib import Path

import pytest

from evmesh.errors import EvmeshError
from evmesh.runtime import kafka


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, a PATH with nothing on it, no JAVA_HOME; java_binary() forgets what it found."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("EVMESH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    kafka.java_binary.cache_clear()
    yield bin_dir
    kafka.java_binary.cache_clear()


def test_cache_dir_follows_evmesh_cache(isolated: Path, tmp_path: Path):
    assert kafka.kafka_home() == tmp_path / "cache" / f"kafka-{kafka.KAFKA_VERSION}"


def test_missing_java_is_named(isolated: Path):
    with pytest.raises(EvmeshError, match="java not found.*Java 17"):
        kafka.ensure_kafka_jars()


def test_missing_maven_is_named(isolated: Path):
    java = shutil.which("java", path=os.defpath + ":/usr/lib/jvm/default-java/bin")
    if java is None:
        pytest.fail("no java on this machine to test the mvn message with (apt-get install -y default-jre-headless)")
    (isolated / "java").symlink_to(java)
    with pytest.raises(EvmeshError, match="mvn not found.*apt-get install -y maven"):
        kafka.ensure_kafka_jars()
    assert not kafka.kafka_jars_ready()


def test_a_completed_fetch_is_reused_without_maven_or_java(isolated: Path):
    home = kafka.kafka_home()
    (home / "lib").mkdir(parents=True)
    (home / "lib" / f"kafka_{kafka.SCALA_VERSION}-{kafka.KAFKA_VERSION}.jar").write_bytes(b"")
    (home / ".complete").write_text("kafka\n")
    assert kafka.ensure_kafka_jars() == home / "lib"


def test_metadata_brokers_parses_a_v4_response():
    """A minimal Metadata v4 server on a socket: two brokers, one with a rack."""
    import socket

    def broker(host: bytes, node: int, port: int, rack: bytes | None) -> bytes:
        out = struct.pack(">ih", node, len(host)) + host + struct.pack(">i", port)
        return out + (struct.pack(">h", -1) if rack is None else struct.pack(">h", len(rack)) + rack)

    body = struct.pack(">iii", 1, 0, 2) + broker(b"127.0.0.1", 2, 9093, b"r1") + broker(b"127.0.0.1", 1, 9092, None)
    body += struct.pack(">hi", -1, 1) + struct.pack(">i", 0)  # cluster id, controller, no topics
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            (size,) = struct.unpack(">i", conn.recv(4))
            req = conn.recv(size)
            assert struct.unpack_from(">hh", req) == (3, 4)
            conn.sendall(struct.pack(">i", len(body)) + body)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert kafka.metadata_brokers(srv.getsockname()[1]) == [(1, "127.0.0.1", 9092), (2, "127.0.0.1", 9093)]
    finally:
        t.join(5)
        srv.close()
