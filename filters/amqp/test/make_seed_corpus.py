"""Writes the hand-made seed corpus of the AMQP parser fuzz target.

Each file: one selector byte (bit 0: direction 0 c2s / 1 s2c; bits 1-6: split
step; bit 7: frame_max 131072 instead of 4096), then the stream.
Run from the repository root: python3 filters/amqp/test/make_seed_corpus.py
"""
import os
import struct

OUT = "filters/amqp/test/corpus/amqp_parser"
PROTO = b"AMQP\x00\x00\x09\x01"


def ss(s): return bytes([len(s)]) + s
def ls(s): return struct.pack(">I", len(s)) + s
def frame(t, ch, p, end=b"\xce"): return struct.pack(">BHI", t, ch, len(p)) + p + end
def method(ch, c, m, args=b""): return frame(1, ch, struct.pack(">HH", c, m) + args)
def header(ch, size, flags=0, props=b"", cls=60): return frame(2, ch, struct.pack(">HHQH", cls, 0, size, flags) + props)
def body(ch, d): return frame(3, ch, d)
def publish(ch, x, rk): return method(ch, 60, 40, struct.pack(">H", 0) + ss(x) + ss(rk) + b"\x00")


table = ss(b"S") + b"S" + ls(b"str") + ss(b"I") + b"I" + struct.pack(">i", -5) + ss(b"t") + b"t\x01" \
    + ss(b"D") + b"D\x02" + struct.pack(">I", 12345) + ss(b"T") + b"T" + struct.pack(">Q", 1) + ss(b"V") + b"V" \
    + ss(b"x") + b"x" + ls(b"\x00\x01") + ss(b"d") + b"d" + struct.pack(">d", 1.5) \
    + ss(b"f") + b"f" + struct.pack(">f", 2.5) + ss(b"l") + b"l" + struct.pack(">q", -1) \
    + ss(b"b") + b"b\xff" + ss(b"B") + b"B\xff" + ss(b"s") + b"s" + struct.pack(">h", -2) \
    + ss(b"u") + b"u" + struct.pack(">H", 2) + ss(b"i") + b"i" + struct.pack(">I", 3) \
    + ss(b"L") + b"L" + struct.pack(">Q", 4)
nested = ss(b"F") + b"F" + ls(table) + ss(b"A") + b"A" + ls(b"I" + struct.pack(">i", 1) + b"S" + ls(b"a") + b"F" + ls(table))

c2s_session = PROTO + method(0, 10, 11, ls(nested) + ss(b"PLAIN") + ls(b"\x00guest\x00guest") + ss(b"en_US")) \
    + method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 60)) + method(0, 10, 40, ss(b"/") + ss(b"") + b"\x00") \
    + method(1, 20, 10, ss(b"")) + method(1, 85, 10, b"\x00") \
    + method(1, 40, 10, struct.pack(">H", 0) + ss(b"ex") + ss(b"topic") + b"\x02" + ls(b"")) \
    + method(1, 50, 10, struct.pack(">H", 0) + ss(b"q") + b"\x02" + ls(ss(b"x-queue-type") + b"S" + ls(b"quorum"))) \
    + method(1, 50, 20, struct.pack(">H", 0) + ss(b"q") + ss(b"ex") + ss(b"a.#") + b"\x00" + ls(b"")) \
    + publish(1, b"ex", b"a.b") + header(1, 5, 0xfffc, ss(b"text/plain") + ss(b"gzip") + ls(table) + b"\x02\x05"
                                         + ss(b"c") + ss(b"r") + ss(b"1000") + ss(b"m") + struct.pack(">Q", 9)
                                         + ss(b"t") + ss(b"guest") + ss(b"app") + ss(b"")) + body(1, b"hello") \
    + method(1, 60, 20, struct.pack(">H", 0) + ss(b"q") + ss(b"") + b"\x00" + ls(b"")) \
    + method(1, 60, 80, struct.pack(">Q", 1) + b"\x01") + method(1, 60, 120, struct.pack(">Q", 2) + b"\x03") \
    + method(1, 60, 90, struct.pack(">Q", 3) + b"\x00") + method(1, 90, 10) + method(1, 90, 20) \
    + frame(8, 0, b"") + method(1, 20, 40, struct.pack(">H", 200) + ss(b"bye") + struct.pack(">HH", 0, 0)) \
    + method(0, 10, 50, struct.pack(">H", 200) + ss(b"Goodbye") + struct.pack(">HH", 0, 0))

s2c_session = method(0, 10, 10, b"\x00\x09" + ls(nested) + ls(b"PLAIN AMQPLAIN") + ls(b"en_US")) \
    + method(0, 10, 30, struct.pack(">HIH", 2047, 131072, 60)) + method(0, 10, 41, ss(b"")) \
    + method(1, 20, 11, ls(b"")) + method(1, 50, 11, ss(b"q") + struct.pack(">II", 0, 0)) \
    + method(1, 60, 21, ss(b"ctag")) \
    + method(1, 60, 60, ss(b"ctag") + struct.pack(">Q", 1) + b"\x00" + ss(b"ex") + ss(b"a.b")) + header(1, 3) + body(1, b"abc") \
    + method(1, 60, 50, struct.pack(">H", 312) + ss(b"NO_ROUTE") + ss(b"ex") + ss(b"x")) + header(1, 0) \
    + method(1, 60, 71, struct.pack(">Q", 2) + b"\x00" + ss(b"ex") + ss(b"k") + struct.pack(">I", 0)) + header(1, 0) \
    + method(1, 60, 80, struct.pack(">Q", 1) + b"\x00") + method(0, 10, 60, ss(b"mem")) + method(0, 10, 61) \
    + method(1, 20, 40, struct.pack(">H", 403) + ss(b"ACCESS_REFUSED") + struct.pack(">HH", 60, 40))

deep = b"V"
for _ in range(20):
    deep = b"A" + ls(deep)

seeds = {
    "c2s_session": (0x80, c2s_session),
    "c2s_session_step1": (0x80 | (0 << 1), c2s_session),
    "c2s_session_step5": (0x80 | (4 << 1), c2s_session),
    "s2c_session": (0x81, s2c_session),
    "s2c_session_step3": (0x81 | (2 << 1), s2c_session),
    "c2s_bad_proto": (0, b"AMQP\x00\x00\x09\x00" + publish(1, b"x", b"y")),
    "c2s_http": (0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    "c2s_bad_frame_end": (0, PROTO + publish(1, b"x", b"y")[:-1] + b"\x00"),
    "c2s_bad_body_end": (0, PROTO + body(1, b"abc")[:-1] + b"X"),
    "c2s_oversized": (0, PROTO + frame(3, 1, b"a" * 5000)),
    "s2c_huge_size": (1, struct.pack(">BHI", 1, 0, 0xFFFFFFFF) + b"abc"),
    "c2s_unknown_type": (0, PROTO + frame(5, 0, b"")),
    "c2s_heartbeat_payload": (0, PROTO + frame(8, 0, b"x")),
    "c2s_unknown_method": (0, PROTO + method(1, 60, 999, b"junk") + method(1, 123, 1, b"") + publish(1, b"a", b"b")),
    "c2s_unknown_class_header": (0, PROTO + header(1, 2, 0x1234, b"opaque", 77) + body(1, b"zz")),
    "c2s_truncated_publish": (0, PROTO + method(1, 60, 40, struct.pack(">H", 0) + ss(b"e") + b"\x09r")),
    "c2s_trailing_bytes": (0, PROTO + method(1, 60, 80, struct.pack(">Q", 1) + b"\x00\x00")),
    "c2s_short_header": (0, PROTO + frame(2, 1, struct.pack(">HHI", 60, 0, 1))),
    "c2s_huge_table": (0, PROTO + method(1, 50, 10, struct.pack(">H", 0) + ss(b"q") + b"\x00" + struct.pack(">I", 0x7FFFFFF0) + b"ab")),
    "c2s_bad_field_type": (0, PROTO + method(1, 50, 10, struct.pack(">H", 0) + ss(b"q") + b"\x00" + ls(ss(b"k") + b"Q"))),
    "c2s_deep_array": (0x80, PROTO + method(1, 50, 10, struct.pack(">H", 0) + ss(b"q") + b"\x00" + ls(ss(b"k") + deep))),
    "c2s_reserved_flag": (0, PROTO + header(1, 0, 0x0002)),
    "c2s_tune_small": (0x80, PROTO + method(0, 10, 31, struct.pack(">HIH", 0, 4096, 0)) + body(1, b"a" * 5000)),
    "c2s_empty_frames": (0, PROTO + frame(1, 0, b"") + frame(2, 0, b"")),
    "s2c_refusal": (1, PROTO),
}

os.makedirs(OUT, exist_ok=True)
for name, (sel, data) in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([sel]) + data)
print(f"{len(seeds)} seeds in {OUT}")

# ---- the filter fuzz target: setup byte, then records [op][len][bytes] (op 0 client, 1 broker, 0xFE release)
FOUT = "filters/amqp/test/corpus/amqp_filter"


def records(setup, steps):
    out = bytearray([setup])
    for op, data in steps:
        for i in range(0, max(len(data), 1), 255):
            piece = data[i:i + 255]
            out += bytes([op, len(piece)]) + piece
    return bytes(out)


def close(ch, code, text, c=60, m=40): return method(ch, 20, 40, struct.pack(">H", code) + ss(text) + struct.pack(">HH", c, m))
def close_ok(ch): return method(ch, 20, 41)


hs = PROTO + method(0, 10, 11, ls(b"") + ss(b"PLAIN") + ls(b"\x00guest\x00pw") + ss(b"en_US")) \
    + method(0, 10, 31, struct.pack(">HIH", 2047, 4096, 0)) + method(0, 10, 40, ss(b"/") + ss(b"") + b"\x00") \
    + method(1, 20, 10, ss(b"")) + method(2, 20, 10, ss(b""))
server_hs = method(0, 10, 10, b"\x00\x09" + ls(b"") + ls(b"PLAIN") + ls(b"en_US")) \
    + method(0, 10, 30, struct.pack(">HIH", 2047, 0, 60)) + method(0, 10, 41, ss(b"")) + method(1, 20, 11, ls(b""))
msg_ok = publish(2, b"x", b"a.b") + header(2, 3) + body(2, b"abc")
msg_denied = publish(1, b"x", b"secret.k") + header(1, 2) + body(1, b"zz")
msg_big = publish(1, b"x", b"a") + header(1, 200) + body(1, b"b" * 200)
deliver = method(1, 60, 60, ss(b"t") + struct.pack(">Q", 1) + b"\x00" + ss(b"x") + ss(b"k")) + header(1, 1) + body(1, b"d")
filter_seeds = {
    "pass": (0, [(0, hs + msg_ok), (1, server_hs)]),
    "deny_then_reopen": (0, [(1, server_hs), (0, hs + msg_denied + msg_ok), (1, deliver + close_ok(1)),
                             (0, close_ok(1) + method(1, 20, 10, ss(b""))), (1, method(1, 20, 11, ls(b"")))]),
    "reopen_before_close_ok": (5, [(0, hs + msg_denied), (0, close_ok(1) + method(1, 20, 10, ss(b"")) + msg_ok),
                                   (1, close_ok(1)), (0xFE, b""), (0, msg_ok)]),
    "crossing_close": (0, [(0, hs + msg_denied), (1, close(1, 404, b"NOT_FOUND") + close_ok(1)), (0, frame(8, 0, b""))]),
    "body_limit": (6, [(0, hs + msg_big + msg_ok)]),
    "consume_denied": (1, [(0, hs + method(1, 60, 20, struct.pack(">H", 0) + ss(b"private.x") + ss(b"") + b"\x00" + ls(b"")))]),
    "split_everything": (15, [(0, bytes([b])) for b in (hs + msg_denied + msg_ok)]),
    "bad_client": (0, [(0, hs + frame(1, 1, b"\x00"))]),
    "bad_server": (0, [(1, frame(9, 0, b""))]),
}
os.makedirs(FOUT, exist_ok=True)
for name, (setup, steps) in filter_seeds.items():
    with open(os.path.join(FOUT, name), "wb") as f:
        f.write(records(setup, steps))
print(f"{len(filter_seeds)} seeds in {FOUT}")
