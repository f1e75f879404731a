#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "filters/amqp/codec/encode.h"
#include "filters/amqp/codec/frame_parser.h"
#include "filters/amqp/test/amqp_wire.h"

namespace evmesh::amqp {
namespace {

using testing::W;
using testing::body;
using testing::header;
using testing::heartbeat;
using testing::method;
using testing::proto;

std::string describe(const Frame& f) {
  std::string s;
  switch (f.type) {
    case FrameType::kProtocolHeader: s = "proto"; break;
    case FrameType::kMethod: s = std::string("M:") + f.method->name(); break;
    case FrameType::kHeader: s = "H"; break;
    case FrameType::kBody: s = "B"; break;
    case FrameType::kHeartbeat: s = "hb"; break;
  }
  s += "@" + std::to_string(f.start) + "+" + std::to_string(f.frame_len()) + " ch" + std::to_string(f.channel);
  if (const Method* m = f.method) {
    if (!m->known()) s += " ids=" + std::to_string(m->class_id) + "." + std::to_string(m->method_id);
    auto add = [&s](const char* k, std::string_view v) {
      if (!v.empty()) s += std::string(" ") + k + "=" + std::string(v);
    };
    add("x", m->exchange);
    add("type", m->exchange_type);
    add("rk", m->routing_key);
    add("q", m->queue);
    add("tag", m->consumer_tag);
    add("dst", m->destination);
    add("src", m->source);
    add("text", m->reply_text);
    add("vhost", m->vhost);
    add("mech", m->mechanism);
    add("locale", m->locale);
    add("reason", m->reason);
    add("mechs", m->mechanisms);
    add("locales", m->locales);
    add("resp", m->response);
    if (!m->arguments.empty()) s += " args=" + std::to_string(m->arguments.size());
    if (!m->properties.empty()) s += " props=" + std::to_string(m->properties.size());
    auto num = [&s](const char* k, uint64_t v) {
      if (v != 0) s += std::string(" ") + k + "=" + std::to_string(v);
    };
    num("ver", m->version_major * 100 + m->version_minor);
    num("code", m->reply_code);
    num("fc", m->failed_class_id);
    num("fm", m->failed_method_id);
    num("chmax", m->channel_max);
    num("hb", m->heartbeat);
    num("pc", m->prefetch_count);
    num("fmax", m->frame_max);
    num("ps", m->prefetch_size);
    num("mc", m->message_count);
    num("cc", m->consumer_count);
    num("dtag", m->delivery_tag);
    num("bits", m->bits);
  }
  if (const ContentHeader* h = f.header) {
    s += " class=" + std::to_string(h->class_id) + " size=" + std::to_string(h->body_size) +
         " flags=" + std::to_string(h->props.flags);
  }
  return s;
}

struct Result {
  std::vector<std::string> frames;
  bool ok = true;
  std::string error;
  uint64_t error_offset = 0;
  uint64_t offset = 0;
};

Result run(Dir dir, const std::vector<std::string_view>& pieces, uint32_t cap = 131072) {
  Parser p(dir, cap);
  Result r;
  for (auto piece : pieces) {
    if (!p.feed(piece, [&](const Frame& f) { r.frames.push_back(describe(f)); })) {
      r.ok = false;
      break;
    }
  }
  r.error = p.error();
  r.error_offset = p.error_offset();
  r.offset = p.offset();
  return r;
}

// Whole, byte by byte, and split in two at every position: same frames, same verdict.
Result check_all_splits(Dir dir, const std::string& wire, uint32_t cap = 131072) {
  const Result whole = run(dir, {wire}, cap);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < wire.size(); ++i) bytes.push_back(std::string_view(wire).substr(i, 1));
  const Result one = run(dir, bytes, cap);
  EXPECT_EQ(one.frames, whole.frames) << "byte by byte";
  EXPECT_EQ(one.ok, whole.ok);
  EXPECT_EQ(one.error, whole.error);
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    const std::string_view w(wire);
    const Result two = run(dir, {w.substr(0, cut), w.substr(cut)}, cap);
    EXPECT_EQ(two.frames, whole.frames) << "cut at " << cut;
    EXPECT_EQ(two.ok, whole.ok) << "cut at " << cut;
    EXPECT_EQ(two.error, whole.error) << "cut at " << cut;
  }
  return whole;
}

std::string table1() { return W().ss("k").u8('S').ls("v").b; }  // 7 bytes

TEST(AmqpCodec, ClientMethodsWholeAndSplitEverywhere) {
  const std::string t = table1();
  std::string wire = proto();
  wire += method(0, 10, 11, W().ls(t).ss("PLAIN").ls(std::string("\0guest\0guest", 12)).ss("en_US").b);
  wire += method(0, 10, 21, W().ls("resp").b);
  wire += method(0, 10, 31, W().u16(2047).u32(131072).u16(60).b);
  wire += method(0, 10, 40, W().ss("/").ss("").bits({true}).b);
  wire += method(1, 20, 10, W().ss("").b);
  wire += method(1, 40, 10, W().u16(0).ss("ex").ss("topic").bits({true, true, false, false, true}).ls(t).b);
  wire += method(1, 40, 20, W().u16(0).ss("ex").bits({true, false}).b);
  wire += method(1, 40, 30, W().u16(0).ss("dst").ss("src").ss("a.*").bits({false}).ls("").b);
  wire += method(1, 40, 40, W().u16(0).ss("dst").ss("src").ss("a.#").bits({true}).ls(t).b);
  wire += method(1, 50, 10, W().u16(0).ss("q1").bits({false, true, false, true, false}).ls(t).b);
  wire += method(1, 50, 20, W().u16(0).ss("q1").ss("ex").ss("a.b").bits({false}).ls("").b);
  wire += method(1, 50, 30, W().u16(0).ss("q1").bits({true}).b);
  wire += method(1, 50, 40, W().u16(0).ss("q1").bits({true, true, false}).b);
  wire += method(1, 50, 50, W().u16(0).ss("q1").ss("ex").ss("a.b").ls("").b);
  wire += method(1, 60, 10, W().u32(0).u16(10).bits({true}).b);
  wire += method(1, 60, 20, W().u16(0).ss("q1").ss("c1").bits({false, false, true, false}).ls(t).b);
  wire += method(1, 60, 30, W().ss("c1").bits({false}).b);
  wire += method(1, 60, 40, W().u16(0).ss("ex").ss("a.b").bits({true, false}).b);
  wire += header(1, 5, 0x9000, W().ss("text/plain").u8(2).b);
  wire += body(1, "hello");
  wire += method(1, 60, 70, W().u16(0).ss("q1").bits({true}).b);
  wire += method(1, 60, 80, W().u64(7).bits({true}).b);
  wire += method(1, 60, 90, W().u64(8).bits({false}).b);
  wire += method(1, 60, 100, W().bits({true}).b);
  wire += method(1, 60, 110, W().bits({true}).b);
  wire += method(1, 60, 120, W().u64(9).bits({true, true}).b);
  wire += method(1, 85, 10, W().bits({false}).b);
  wire += method(2, 90, 10);
  wire += method(2, 90, 20);
  wire += method(2, 90, 30);
  wire += method(1, 20, 20, W().bits({true}).b);
  wire += method(1, 20, 40, W().u16(200).ss("bye").u16(0).u16(0).b);
  wire += method(1, 20, 41);
  wire += heartbeat();
  wire += method(0, 10, 50, W().u16(200).ss("Goodbye").u16(0).u16(0).b);
  wire += method(0, 10, 51);
  const Result r = check_all_splits(Dir::kClientToServer, wire);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.offset, wire.size());
  const std::vector<std::string> want = {
      "proto@0+8 ch0",
      "M:connection.start-ok@8+52 ch0 mech=PLAIN locale=en_US resp=" + std::string("\0guest\0guest", 12) +
          " props=8",
      "M:connection.secure-ok@60+20 ch0 resp=resp",
      "M:connection.tune-ok@80+20 ch0 chmax=2047 hb=60 fmax=131072",
      "M:connection.open@100+16 ch0 vhost=/ bits=131072",
      "M:channel.open@116+13 ch1",
      "M:exchange.declare@129+36 ch1 x=ex type=topic args=8 bits=19",
      "M:exchange.delete@165+18 ch1 x=ex bits=64",
      "M:exchange.bind@183+31 ch1 rk=a.* dst=dst src=src",
      "M:exchange.unbind@214+39 ch1 rk=a.# dst=dst src=src args=8 bits=16",
      "M:queue.declare@253+30 ch1 q=q1 args=8 bits=6",
      "M:queue.bind@283+29 ch1 x=ex rk=a.b q=q1",
      "M:queue.purge@312+18 ch1 q=q1 bits=16",
      "M:queue.delete@330+18 ch1 q=q1 bits=192",
      "M:queue.unbind@348+28 ch1 x=ex rk=a.b q=q1",
      "M:basic.qos@376+19 ch1 pc=10 bits=32768",
      "M:basic.consume@395+33 ch1 q=q1 tag=c1 args=8 bits=32",
      "M:basic.cancel@428+16 ch1 tag=c1",
      "M:basic.publish@444+22 ch1 x=ex rk=a.b bits=1024",
      "H@466+34 ch1 class=60 size=5 flags=36864",
      "B@500+13 ch1",
      "M:basic.get@513+18 ch1 q=q1 bits=512",
      "M:basic.ack@531+21 ch1 dtag=7 bits=8192",
      "M:basic.reject@552+21 ch1 dtag=8",
      "M:basic.recover-async@573+13 ch1 bits=16384",
      "M:basic.recover@586+13 ch1 bits=16384",
      "M:basic.nack@599+21 ch1 dtag=9 bits=24576",
      "M:confirm.select@620+13 ch1",
      "M:tx.select@633+12 ch2",
      "M:tx.commit@645+12 ch2",
      "M:tx.rollback@657+12 ch2",
      "M:channel.flow@669+13 ch1 bits=65536",
      "M:channel.close@682+22 ch1 text=bye code=200",
      "M:channel.close-ok@704+12 ch1",
      "hb@716+8 ch0",
      "M:connection.close@724+26 ch0 text=Goodbye code=200",
      "M:connection.close-ok@750+12 ch0",
  };
  EXPECT_EQ(r.frames, want);
}

TEST(AmqpCodec, ServerMethodsWholeAndSplitEverywhere) {
  const std::string t = table1();
  std::string wire;
  wire += method(0, 10, 10, W().u8(0).u8(9).ls(t).ls("PLAIN AMQPLAIN").ls("en_US").b);
  wire += method(0, 10, 20, W().ls("chal").b);
  wire += method(0, 10, 30, W().u16(2047).u32(131072).u16(60).b);
  wire += method(0, 10, 41, W().ss("").b);
  wire += method(0, 10, 60, W().ss("low memory").b);
  wire += method(0, 10, 61);
  wire += method(1, 20, 11, W().ls("").b);
  wire += method(1, 20, 21, W().bits({false}).b);
  wire += method(1, 40, 11);
  wire += method(1, 40, 21);
  wire += method(1, 40, 31);
  wire += method(1, 40, 51);
  wire += method(1, 50, 11, W().ss("amq.gen-1").u32(3).u32(1).b);
  wire += method(1, 50, 21);
  wire += method(1, 50, 31, W().u32(4).b);
  wire += method(1, 50, 41, W().u32(5).b);
  wire += method(1, 50, 51);
  wire += method(1, 60, 11);
  wire += method(1, 60, 21, W().ss("ctag-1").b);
  wire += method(1, 60, 31, W().ss("ctag-1").b);
  wire += method(1, 60, 50, W().u16(312).ss("NO_ROUTE").ss("ex").ss("a.b").b);
  wire += header(1, 0);
  wire += method(1, 60, 60, W().ss("ctag-1").u64(1).bits({true}).ss("ex").ss("a.b").b);
  wire += header(1, 3);
  wire += body(1, "abc");
  wire += method(1, 60, 71, W().u64(2).bits({false}).ss("ex").ss("a.b").u32(9).b);
  wire += header(1, 0);
  wire += method(1, 60, 72, W().ss("").b);
  wire += method(1, 60, 80, W().u64(3).bits({true}).b);
  wire += method(1, 60, 120, W().u64(4).bits({false, false}).b);
  wire += method(1, 60, 111);
  wire += method(1, 85, 11);
  wire += method(1, 90, 11);
  wire += method(1, 90, 21);
  wire += method(1, 90, 31);
  const Result r = check_all_splits(Dir::kServerToClient, wire);
  ASSERT_TRUE(r.ok) << r.error;
  const std::vector<std::string> want = {
      "M:connection.start@0+53 ch0 mechs=PLAIN AMQPLAIN locales=en_US props=8 ver=9",
      "M:connection.secure@53+20 ch0 resp=chal",
      "M:connection.tune@73+20 ch0 chmax=2047 hb=60 fmax=131072",
      "M:connection.open-ok@93+13 ch0",
      "M:connection.blocked@106+23 ch0 reason=low memory",
      "M:connection.unblocked@129+12 ch0",
      "M:channel.open-ok@141+16 ch1",
      "M:channel.flow-ok@157+13 ch1",
      "M:exchange.declare-ok@170+12 ch1",
      "M:exchange.delete-ok@182+12 ch1",
      "M:exchange.bind-ok@194+12 ch1",
      "M:exchange.unbind-ok@206+12 ch1",
      "M:queue.declare-ok@218+30 ch1 q=amq.gen-1 mc=3 cc=1",
      "M:queue.bind-ok@248+12 ch1",
      "M:queue.purge-ok@260+16 ch1 mc=4",
      "M:queue.delete-ok@276+16 ch1 mc=5",
      "M:queue.unbind-ok@292+12 ch1",
      "M:basic.qos-ok@304+12 ch1",
      "M:basic.consume-ok@316+19 ch1 tag=ctag-1",
      "M:basic.cancel-ok@335+19 ch1 tag=ctag-1",
      "M:basic.return@354+30 ch1 x=ex rk=a.b text=NO_ROUTE code=312",
      "H@384+22 ch1 class=60 size=0 flags=0",
      "M:basic.deliver@406+35 ch1 x=ex rk=a.b tag=ctag-1 dtag=1 bits=4096",
      "H@441+22 ch1 class=60 size=3 flags=0",
      "B@463+11 ch1",
      "M:basic.get-ok@474+32 ch1 x=ex rk=a.b mc=9 dtag=2",
      "H@506+22 ch1 class=60 size=0 flags=0",
      "M:basic.get-empty@528+13 ch1",
      "M:basic.ack@541+21 ch1 dtag=3 bits=8192",
      "M:basic.nack@562+21 ch1 dtag=4",
      "M:basic.recover-ok@583+12 ch1",
      "M:confirm.select-ok@595+12 ch1",
      "M:tx.select-ok@607+12 ch1",
      "M:tx.commit-ok@619+12 ch1",
      "M:tx.rollback-ok@631+12 ch1",
  };
  EXPECT_EQ(r.frames, want);
}

TEST(AmqpCodec, ContentHeaderWithEveryBasicProperty) {
  const std::string headers = W().ss("h").u8('I').u32(1).ss("n").u8('F').ls(table1()).b;
  const std::string props = W().ss("application/json").ss("gzip").ls(headers).u8(2).u8(9).ss("corr").ss("reply")
                                .ss("60000").ss("mid").u64(1700000000).ss("type").ss("guest").ss("app").ss("cl").b;
  const std::string wire = header(3, 1000, 0xfffc, props);
  Parser p(Dir::kClientToServer, 131072);
  ASSERT_TRUE(p.feed(proto(), [](const Frame&) {}));
  int n = 0;
  ASSERT_TRUE(p.feed(wire, [&](const Frame& f) {
    ++n;
    ASSERT_EQ(f.type, FrameType::kHeader);
    const ContentHeader& h = *f.header;
    EXPECT_EQ(h.class_id, 60);
    EXPECT_EQ(h.body_size, 1000u);
    const BasicProperties& b = h.props;
    EXPECT_EQ(b.content_type, "application/json");
    EXPECT_EQ(b.content_encoding, "gzip");
    EXPECT_EQ(b.headers, headers);
    EXPECT_EQ(b.delivery_mode, 2);
    EXPECT_EQ(b.priority, 9);
    EXPECT_EQ(b.correlation_id, "corr");
    EXPECT_EQ(b.reply_to, "reply");
    EXPECT_EQ(b.expiration, "60000");
    EXPECT_EQ(b.message_id, "mid");
    EXPECT_EQ(b.timestamp, 1700000000u);
    EXPECT_EQ(b.type, "type");
    EXPECT_EQ(b.user_id, "guest");
    EXPECT_EQ(b.app_id, "app");
    EXPECT_EQ(b.cluster_id, "cl");
  })) << p.error();
  EXPECT_EQ(n, 1);
  check_all_splits(Dir::kClientToServer, proto() + wire);
  // Each property alone.
  for (int bit = 2; bit < 16; ++bit) {
    const uint16_t flag = static_cast<uint16_t>(1u << bit);
    W one;
    if (flag == kHeaders) one.ls(headers);
    else if (flag == kDeliveryMode || flag == kPriority) one.u8(1);
    else if (flag == kTimestamp) one.u64(5);
    else one.ss("v");
    const Result r = run(Dir::kClientToServer, {proto() + header(1, 1, flag, one.b)});
    EXPECT_TRUE(r.ok) << bit << " " << r.error;
    // Missing value: truncated.
    const Result bad = run(Dir::kClientToServer, {proto() + header(1, 1, flag, "")});
    EXPECT_FALSE(bad.ok) << bit;
  }
}

TEST(AmqpCodec, UnknownMethodsAndClassesPassThrough) {
  std::string wire = proto() + method(1, 60, 999, "whatever bytes") + method(1, 77, 1, "") +
                     header(1, 2, 0x1234, "opaque", 99) + body(1, "zz") + method(1, 60, 40, W().u16(0).ss("e").ss("r").u8(0).b);
  const Result r = check_all_splits(Dir::kClientToServer, wire);
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.frames.size(), 6u);
  EXPECT_EQ(r.frames[1], "M:unknown@8+26 ch1 ids=60.999");
  EXPECT_EQ(r.frames[2], "M:unknown@34+12 ch1 ids=77.1");
  EXPECT_EQ(r.frames[3], "H@46+28 ch1 class=99 size=2 flags=0");
  EXPECT_EQ(r.frames[5], "M:basic.publish@84+19 ch1 x=e rk=r");
}

struct BadCase {
  const char* name;
  Dir dir;
  std::string wire;
  uint64_t offset;
  const char* reason;
};

TEST(AmqpCodec, MalformedInputFailsWithOffset) {
  const std::string p = proto();
  const std::string pub = method(1, 60, 40, W().u16(0).ss("e").ss("r").u8(0).b);
  std::string bad_end = pub;
  bad_end.back() = 'x';
  std::string bad_body = body(1, "abc");
  bad_body.back() = 0;
  const std::vector<BadCase> cases = {
      {"bad protocol header", Dir::kClientToServer, std::string("AMQP\0\0\x09\x00", 8), 0,
       "protocol header is not AMQP 0-9-1"},
      {"http", Dir::kClientToServer, "GET / HTTP/1.1\r\n", 0, "protocol header is not AMQP 0-9-1"},
      {"bad frame end", Dir::kClientToServer, p + bad_end, 8 + pub.size() - 1, "frame end octet is not 0xCE"},
      {"bad body frame end", Dir::kClientToServer, p + bad_body, 8 + 7 + 3, "frame end octet is not 0xCE"},
      {"oversized frame", Dir::kClientToServer, p + testing::frame(1, 1, std::string(5000, 'a')), 8,
       "frame of 5008 bytes exceeds frame_max 4096 (channel 1)"},
      {"huge declared size", Dir::kServerToClient, W().u8(3).u16(1).u32(0xffffffff).b, 0,
       "frame of 4294967303 bytes exceeds frame_max 4096 (channel 1)"},
      {"unknown frame type", Dir::kClientToServer, p + testing::frame(4, 0, ""), 8,
       "unknown frame type 4 (channel 0)"},
      {"heartbeat with payload", Dir::kClientToServer, p + testing::frame(8, 0, "x"), 8,
       "heartbeat frame with a payload (channel 0)"},
      {"short method", Dir::kClientToServer, p + testing::frame(1, 1, "\x00\x3c"), 15,
       "method frame shorter than 4 bytes in method (channel 1)"},
      {"truncated publish", Dir::kClientToServer, p + method(1, 60, 40, W().u16(0).ss("e").u8(9).raw("r").b), 23,
       "truncated method arguments in basic.publish (channel 1)"},
      {"trailing bytes", Dir::kClientToServer, p + method(1, 60, 80, W().u64(1).u8(0).u8(0).b), 28,
       "unexpected bytes after method arguments in basic.ack (channel 1)"},
      {"truncated content header", Dir::kClientToServer, p + testing::frame(2, 1, W().u16(60).u16(0).u32(1).b), 15,
       "content header shorter than 12 bytes in content header (channel 1)"},
      {"huge table length", Dir::kServerToClient,
       method(0, 10, 10, W().u8(0).u8(9).u32(0x7fffffff).raw("abc").b), 13,
       "truncated field table in connection.start (channel 0)"},
      {"bad table value", Dir::kServerToClient,
       method(0, 10, 10, W().u8(0).u8(9).ls(W().ss("k").u8('Q').b).ls("").ls("").b), 19,
       "unknown field value type in connection.start (channel 0)"},
      {"huge string in headers", Dir::kClientToServer,
       p + header(1, 0, kHeaders, W().ls(W().ss("k").u8('S').u32(0xfffffff0).b).b), 8 + 7 + 14 + 4 + 3,
       "truncated field value in content header (channel 1)"},
      {"reserved property flag", Dir::kClientToServer, p + header(1, 0, 0x0002, ""), 8 + 7 + 12,
       "reserved basic property flag set in content header (channel 1)"},
  };
  for (const BadCase& c : cases) {
    const Result r = check_all_splits(c.dir, c.wire, 4096);
    EXPECT_FALSE(r.ok) << c.name;
    EXPECT_EQ(r.error_offset, c.offset) << c.name << ": " << r.error;
    EXPECT_NE(r.error.find(c.reason), std::string::npos) << c.name << ": " << r.error;
  }
}

TEST(AmqpCodec, FrameMaxIsNegotiated) {
  Parser p(Dir::kClientToServer, 131072);
  ASSERT_TRUE(p.feed(proto() + body(1, std::string(10000, 'x')), [](const Frame&) {}));
  p.set_frame_max(8192);
  EXPECT_EQ(p.frame_max(), 8192u);
  EXPECT_TRUE(p.feed(body(1, std::string(8184, 'x')), [](const Frame&) {}));
  EXPECT_FALSE(p.feed(body(1, std::string(8185, 'x')), [](const Frame&) {}));
  EXPECT_NE(p.error().find("exceeds frame_max 8192"), std::string::npos) << p.error();
  Parser q(Dir::kClientToServer, 65536);
  q.set_frame_max(0);  // no limit announced: the cap stays
  EXPECT_EQ(q.frame_max(), 65536u);
  q.set_frame_max(1000);  // below the spec minimum
  EXPECT_EQ(q.frame_max(), kFrameMinSize);
  q.set_frame_max(1u << 30);  // above the cap
  EXPECT_EQ(q.frame_max(), 65536u);
}

TEST(AmqpCodec, BodyFramesAreReportedAtTheirHeaderAndNotBuffered) {
  Parser p(Dir::kClientToServer, 1 << 20);
  std::vector<std::string> seen;
  auto sink = [&](const Frame& f) { seen.push_back(describe(f)); };
  const std::string b = body(5, std::string(100000, 'z'));
  ASSERT_TRUE(p.feed(proto() + b.substr(0, 10), sink));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], "B@8+100008 ch5");
  EXPECT_FALSE(p.in_partial_frame());
  EXPECT_FALSE(p.at_frame_boundary());
  ASSERT_TRUE(p.feed(b.substr(10), sink));
  EXPECT_TRUE(p.at_frame_boundary());
  // A split method frame is partial until its frame end.
  const std::string m = method(1, 60, 80, W().u64(1).u8(0).b);
  ASSERT_TRUE(p.feed(m.substr(0, 3), sink));
  EXPECT_TRUE(p.in_partial_frame());
  EXPECT_EQ(p.frame_start(), 8u + b.size());
  ASSERT_TRUE(p.feed(m.substr(3), sink));
  EXPECT_TRUE(p.at_frame_boundary());
}

TEST(AmqpCodec, ServerProtocolHeaderRefusal) {
  const Result r = run(Dir::kServerToClient, {std::string("AMQP\0\0\x09\x01", 8)});
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.frames.size(), 1u);
  EXPECT_EQ(r.frames[0], "proto@0+8 ch0");
}

TEST(AmqpCodec, EncodedCloseFramesParse) {
  const std::string wire = proto() + encode_close(3, 403, "ACCESS_REFUSED - x", 60, 40) + encode_channel_close_ok(3) +
                           encode_close(0, 320, "CONNECTION_FORCED", 0, 0);
  const Result r = run(Dir::kClientToServer, {wire});
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.frames.size(), 4u);
  EXPECT_EQ(r.frames[1], "M:channel.close@8+37 ch3 text=ACCESS_REFUSED - x code=403 fc=60 fm=40");
  EXPECT_EQ(r.frames[2], "M:channel.close-ok@45+12 ch3");
  EXPECT_EQ(r.frames[3], "M:connection.close@57+36 ch0 text=CONNECTION_FORCED code=320");
}

}  // namespace
}  // namespace evmesh::amqp
