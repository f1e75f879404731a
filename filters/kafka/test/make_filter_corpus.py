"""Writes the seed corpus of the Kafka filter fuzz target from the captured fixtures.

    python3 filters/kafka/test/make_filter_corpus.py

Each seed is one captured request/response pair (see fixtures/README.md) cut into
records [op][len][bytes] (op 0: client -> broker, 1: broker -> client) of up to 255
bytes, under each setup byte that picks a filter configuration (fuzz_filter.h).
Seeds are named seed_*; files the fuzzer finds later are committed beside them.
"""
from pathlib import Path

HERE = Path(__file__).parent
FIX = HERE / "fixtures"
OUT = HERE / "corpus" / "kafka_filter"


def records(op: int, data: bytes, step: int) -> bytes:
    out = bytearray()
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        out += bytes([op, len(piece)]) + piece
    return bytes(out)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("seed_*"):
        old.unlink()
    n = 0
    for c2s in sorted(list(FIX.glob("*.c2s.bin")) + list((FIX / "kafka4").glob("*.c2s.bin"))):
        s2c = c2s.with_name(c2s.name.replace(".c2s.", ".s2c."))
        req = c2s.read_bytes()
        resp = s2c.read_bytes() if s2c.exists() else b""
        tag = ("k4_" if c2s.parent.name == "kafka4" else "") + c2s.name[: -len(".c2s.bin")]
        for setup, step in ((0x04, 255), (0x0D, 97)):
            body = records(0, req, step) + records(1, resp, step) + bytes([0xFE, 0])
            (OUT / f"seed_{tag}_{setup:02x}").write_bytes(bytes([setup]) + body)
            n += 1
    print(f"{n} seeds in {OUT}")


if __name__ == "__main__":
    main()
