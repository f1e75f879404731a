"""Writes the seed corpus of the Kafka codec fuzz target from the captured fixtures.

    python3 filters/kafka/test/make_corpus.py

Seeds are named seed_*; files the fuzzer finds later (crash reproducers, new
coverage) are committed beside them under their own names and kept.
The first byte of a seed picks the fuzz mode (see fuzz_codec.h).
"""
import struct
from pathlib import Path

HERE = Path(__file__).parent
FIX = HERE / "fixtures"
OUT = HERE / "corpus" / "kafka_codec"
PICK = {18: 0, 3: 1, 10: 2, 60: 3, 1: 4, 0: 5}   # api key -> fuzz_response pick
FLEX_FROM = {18: 3, 3: 9, 10: 3, 60: 0, 1: 12, 0: 9}


def uvarint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return x, i


def skip_tags(b, i):
    n, i = uvarint(b, i)
    for _ in range(n):
        _, i = uvarint(b, i)
        size, i = uvarint(b, i)
        i += size
    return i


def request_body(frame):
    key, ver, _ = struct.unpack_from(">hhi", frame, 4)
    (n,) = struct.unpack_from(">h", frame, 12)
    i = 14 + max(n, 0)
    if ver >= FLEX_FROM.get(key, 99):
        i = skip_tags(frame, i)
    return key, ver, frame[i:]


def produce_blobs(body, ver):
    """Record blobs of a produce request body (v3+)."""
    flex = ver >= 9

    def length(i, wide):
        if flex:
            n, i = uvarint(body, i)
            return n - 1, i
        fmt, size = (">i", 4) if wide else (">h", 2)
        return struct.unpack_from(fmt, body, i)[0], i + size

    def tags(i):
        return skip_tags(body, i) if flex else i

    n, i = length(0, False)
    i += max(n, 0) + 2 + 4                      # transactional id, acks, timeout
    topics, i = length(i, True)
    for _ in range(topics):
        n, i = length(i, False)
        i += n
        parts, i = length(i, True)
        for _ in range(parts):
            i += 4
            n, i = length(i, True)
            if n > 0:
                yield body[i:i + n]
                i += n
            i = tags(i)
        i = tags(i)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("seed_*"):
        old.unlink()
    seeds = {}
    for tag, fix in (("", FIX), ("k4_", FIX / "kafka4")):
        add_seeds(seeds, tag, fix)
    malformed(seeds)
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)
    print(len(seeds), "seeds in", OUT)


def add_seeds(seeds, tag, fix):
    for n, c2s in enumerate(sorted((fix / "raw").glob("*.c2s"))):
        data = c2s.read_bytes()[:8192]
        seeds[f"seed_stream_{tag}{c2s.stem}"] = bytes([(n % 23) << 2]) + data
    for req in sorted(fix.glob("*.c2s.bin")):
        stem = tag + req.name[: -len(".c2s.bin")]
        key, ver, body = request_body(req.read_bytes())
        if key == 0:
            seeds[f"seed_produce_{stem}"] = bytes([1, PICK[0], ver]) + body
            seeds[f"seed_walk_{stem}"] = bytes([3 | (len(seeds) % 23) << 2, ver * 2]) + body
            for j, blob in enumerate(produce_blobs(body, ver)):
                seeds[f"seed_records_{stem}_{j}"] = bytes([2]) + blob
                bad = bytearray(blob)
                bad[-1] ^= 0xFF
                seeds[f"seed_records_badcrc_{stem}_{j}"] = bytes([2]) + bytes(bad)
                seeds[f"seed_records_truncated_{stem}_{j}"] = bytes([2]) + blob[: len(blob) // 2]
        resp = fix / f"{req.name[: -len('.c2s.bin')]}.s2c.bin"
        if key in PICK and key != 0 and resp.exists():
            r = resp.read_bytes()
            hv1 = key != 18 and ver >= FLEX_FROM[key]
            i = skip_tags(r, 8) if hv1 else 8
            seeds[f"seed_response_{stem}"] = bytes([1, PICK[key], ver]) + r[i:]
            if key == 1:
                seeds[f"seed_walk_{stem}"] = bytes([3 | (len(seeds) % 23) << 2, ver * 2 + 1]) + r[i:]


def malformed(seeds):
    seeds["seed_bad_negative_size"] = b"\x00" + b"\xff\xff\xff\xfe" + b"x" * 8
    seeds["seed_bad_huge_size"] = b"\x04" + b"\x7f\xff\xff\xff" + b"x" * 8
    seeds["seed_bad_truncated_header"] = b"\x08" + b"\x00\x00\x00\x05\x00\x03\x00\x0c\x00"
    seeds["seed_bad_client_id_len"] = b"\x00" + b"\x00\x00\x00\x0a\x00\x03\x00\x0c\x00\x00\x00\x01\x7f\xff"
    seeds["seed_unknown_api"] = b"\x00" + b"\x00\x00\x00\x0c\x03\xe7\x00\x01\x00\x00\x00\x02\x00\x00zz"
    seeds["seed_zero_frame"] = b"\x00" + b"\x00\x00\x00\x00" * 3
    seeds["seed_bad_metadata_count"] = bytes([1, 1, 12]) + b"\x00\x00\x00\x00\xff\xff\xff\xff\x07"
    seeds["seed_bad_records_magic"] = bytes([2]) + b"\x00" * 8 + b"\x00\x00\x00\x40" + b"\x00" * 4 + b"\x07"


if __name__ == "__main__":
    main()
