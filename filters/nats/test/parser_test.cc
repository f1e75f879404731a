#include "filters/nats/codec/parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace evmesh::nats {
namespace {

std::string describe(const Frame& f) {
  std::string s = op_name(f.op);
  s += "|" + std::string(f.subject) + "|" + std::string(f.reply) + "|" + std::string(f.sid) + "|" +
       std::string(f.queue) + "|" + std::string(f.arg);
  if (f.has_payload) s += "|h" + std::to_string(f.header_len) + "|p" + std::to_string(f.payload_len);
  s += "@" + std::to_string(f.start) + "+" + std::to_string(f.frame_len());
  return s;
}

struct Result {
  std::vector<std::string> frames;
  bool ok = true;
  std::string error;
  const char* reply = "";
  uint64_t offset = 0;
  bool boundary = false;
};

Result run(Dir dir, const std::vector<std::string_view>& pieces, Limits limits = {}) {
  Parser p(dir, limits);
  Result r;
  for (auto piece : pieces) {
    if (!p.feed(piece, [&](const Frame& f) { r.frames.push_back(describe(f)); })) {
      r.ok = false;
      break;
    }
  }
  r.error = p.error();
  r.reply = p.error_reply();
  r.offset = p.offset();
  r.boundary = p.at_frame_boundary();
  return r;
}

// Feeds `wire` whole, one byte at a time, and split in two at every position;
// every way must give the same frames.
Result check_all_splits(Dir dir, const std::string& wire, Limits limits = {}) {
  const Result whole = run(dir, {wire}, limits);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < wire.size(); ++i) bytes.push_back(std::string_view(wire).substr(i, 1));
  const Result one = run(dir, bytes, limits);
  EXPECT_EQ(one.frames, whole.frames) << "byte by byte";
  EXPECT_EQ(one.ok, whole.ok);
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    const std::string_view w(wire);
    const Result two = run(dir, {w.substr(0, cut), w.substr(cut)}, limits);
    EXPECT_EQ(two.frames, whole.frames) << "cut at " << cut;
    EXPECT_EQ(two.ok, whole.ok) << "cut at " << cut;
  }
  return whole;
}

TEST(NatsParser, ClientOpsWholeAndSplitEverywhere) {
  const std::string wire =
      "CONNECT {\"verbose\":false,\"name\":\"t\"}\r\n"
      "PUB foo 5\r\nhello\r\n"
      "PUB foo.bar _INBOX.1 0\r\n\r\n"
      "HPUB h.s 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
      "HPUB h.s rep 12 12\r\nNATS/1.0\r\n\r\n\r\n"
      "SUB foo 1\r\n"
      "SUB foo.* q 22\r\n"
      "UNSUB 1\r\n"
      "UNSUB 22 10\r\n"
      "PING\r\n"
      "PONG\r\n";
  const Result r = check_all_splits(Dir::kClientToServer, wire);
  ASSERT_TRUE(r.ok) << r.error;
  const std::vector<std::string> want = {
      "CONNECT|||||{\"verbose\":false,\"name\":\"t\"}@0+38",
      "PUB|foo|||||h0|p5@38+18",
      "PUB|foo.bar|_INBOX.1||||h0|p0@56+26",
      "HPUB|h.s|||||h12|p14@82+32",
      "HPUB|h.s|rep||||h12|p12@114+34",
      "SUB|foo||1||@148+11",
      "SUB|foo.*||22|q|@159+16",
      "UNSUB|||1||@175+9",
      "UNSUB|||22||10@184+13",
      "PING|||||@197+6",
      "PONG|||||@203+6",
  };
  EXPECT_EQ(r.frames, want);
  EXPECT_EQ(r.offset, wire.size());
  EXPECT_TRUE(r.boundary);
}

TEST(NatsParser, ServerOpsWholeAndSplitEverywhere) {
  const std::string wire =
      "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n"
      "MSG foo 1 5\r\nhello\r\n"
      "MSG foo 1 _INBOX.2 3\r\nabc\r\n"
      "HMSG h.s 9 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
      "HMSG h.s 9 rep 12 12\r\nNATS/1.0\r\n\r\n\r\n"
      "+OK\r\n"
      "-ERR 'Permissions Violation for Publish to \"x\"'\r\n"
      "PING\r\nPONG\r\n";
  const Result r = check_all_splits(Dir::kServerToClient, wire);
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.frames.size(), 9u);
  EXPECT_EQ(r.frames[0], "INFO|||||{\"server_id\":\"x\",\"max_payload\":1048576}@0+46");
  EXPECT_EQ(r.frames[1], "MSG|foo||1|||h0|p5@46+20");
  EXPECT_EQ(r.frames[2], "MSG|foo|_INBOX.2|1|||h0|p3@66+27");
  EXPECT_EQ(r.frames[3], "HMSG|h.s||9|||h12|p14@93+34");
  EXPECT_EQ(r.frames[4], "HMSG|h.s|rep|9|||h12|p12@127+36");
  EXPECT_EQ(r.frames[5], "+OK|||||@163+5");
  EXPECT_EQ(r.frames[6], "-ERR|||||'Permissions Violation for Publish to \"x\"'@168+49");
  EXPECT_EQ(r.frames[7], "PING|||||@217+6");
}

TEST(NatsParser, OpsAreCaseInsensitiveAndAllowBareLfAndTabs) {
  const Result r = check_all_splits(Dir::kClientToServer, "pub\tfoo  3\nabc\r\nping\r\nSuB a\t1\n");
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.frames.size(), 3u);
  EXPECT_EQ(r.frames[0], "PUB|foo|||||h0|p3@0+16");
  EXPECT_EQ(r.frames[2], "SUB|a||1||@22+8");
}

TEST(NatsParser, ReportsFrameBeforeItsPayloadArrives) {
  Parser p(Dir::kClientToServer, {});
  std::vector<std::string> frames;
  ASSERT_TRUE(p.feed("PUB big 1000\r\n", [&](const Frame& f) { frames.push_back(describe(f)); }));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_FALSE(p.at_frame_boundary());
  EXPECT_EQ(p.payload_remaining(), 1002u);
  ASSERT_TRUE(p.feed(std::string(1000, 'x') + "\r\n", [&](const Frame&) { FAIL(); }));
  EXPECT_TRUE(p.at_frame_boundary());
}

TEST(NatsParser, FeedToBoundaryStopsAfterTheFrameInProgress) {
  Parser p(Dir::kServerToClient, {});
  int frames = 0;
  auto sink = [&](const Frame&) { ++frames; };
  ASSERT_TRUE(p.feed("MSG a 1 10\r\n0123", sink));
  size_t used = 0;
  const std::string rest = "456789\r\nPONG\r\n";
  ASSERT_TRUE(p.feed_to_boundary(rest, sink, &used));
  EXPECT_EQ(used, 8u);
  EXPECT_TRUE(p.at_frame_boundary());
  ASSERT_TRUE(p.feed_to_boundary(std::string_view(rest).substr(used), sink, &used));
  EXPECT_EQ(used, 6u);
  EXPECT_EQ(frames, 2);
  // No boundary in the data: everything is used.
  ASSERT_TRUE(p.feed("MSG a 1 3\r\n", sink));
  ASSERT_TRUE(p.feed_to_boundary("ab", sink, &used));
  EXPECT_EQ(used, 2u);
  EXPECT_FALSE(p.at_frame_boundary());
}

TEST(NatsParser, ErrorOffsetIsTheBadFramesStart) {
  Parser p(Dir::kClientToServer, {});
  EXPECT_FALSE(p.feed("PING\r\nPUB a 1\r\nxZZ", [](const Frame&) {}));
  EXPECT_EQ(p.error_offset(), 16u);  // the byte that should have been CR
  Parser q(Dir::kClientToServer, {});
  EXPECT_FALSE(q.feed("PING\r\nBAD\r\n", [](const Frame&) {}));
  EXPECT_EQ(q.error_offset(), 6u);
}

TEST(NatsParser, RepeatedLinesReuseTheirParseWithFreshOffsets) {
  // The second and third lines hit the line cache; a split one (via scratch) too.
  const std::string one = "PUB orders.new _INBOX.r 3\r\nabc\r\n";
  const Result r = check_all_splits(Dir::kClientToServer, one + one + "SUB x q 7\r\n" + one);
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.frames.size(), 4u);
  EXPECT_EQ(r.frames[0], "PUB|orders.new|_INBOX.r||||h0|p3@0+32");
  EXPECT_EQ(r.frames[1], "PUB|orders.new|_INBOX.r||||h0|p3@32+32");
  EXPECT_EQ(r.frames[2], "SUB|x||7|q|@64+11");
  EXPECT_EQ(r.frames[3], "PUB|orders.new|_INBOX.r||||h0|p3@75+32");
  // An invalid line is never cached: the same bad line fails every time.
  EXPECT_FALSE(run(Dir::kClientToServer, {"PUB a 1x\r\n"}).ok);
}

TEST(NatsParser, InControlLineTracksLineStart) {
  Parser p(Dir::kClientToServer, {});
  ASSERT_TRUE(p.feed("PING\r\nPUB fo", [](const Frame&) {}));
  EXPECT_TRUE(p.in_control_line());
  EXPECT_EQ(p.line_start(), 6u);
  EXPECT_EQ(p.offset(), 12u);
}

struct BadCase {
  Dir dir;
  std::string wire;
  std::string reason;
  std::string reply;
};

TEST(NatsParser, MalformedInputFailsWithStateOffsetAndSnippet) {
  const std::vector<BadCase> cases = {
      {Dir::kClientToServer, "FOO bar\r\n", "offset 0: unknown protocol operation; near 'FOO bar\\x0d\\x0a'",
       "Unknown Protocol Operation"},
      {Dir::kClientToServer, "\r\n", "unknown protocol operation", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PUB foo\r\n", "PUB needs: subject [reply] size", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PUB foo 1x\r\n", "PUB size is not a number", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PUB foo -1\r\n", "PUB size is not a number", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PUB foo 99999999999999999999\r\n", "PUB size is not a number",
       "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PUB a b c 1\r\n", "PUB needs", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PUB foo 3\r\nabcXY", "payload not followed by CRLF", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PUB foo 3\r\nabc\rX", "payload not followed by CRLF", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "HPUB foo 5 3\r\n", "header size larger than total size", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "SUB\r\n", "SUB needs", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "UNSUB 1 x\r\n", "UNSUB max_msgs is not a number", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "PING x\r\n", "PING takes no arguments", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "MSG foo 1 1\r\n", "unknown protocol operation", "Unknown Protocol Operation"},
      {Dir::kClientToServer, "INFO {}\r\n", "unknown protocol operation", "Unknown Protocol Operation"},
      {Dir::kServerToClient, "PUB foo 1\r\n", "unknown protocol operation", "Unknown Protocol Operation"},
      {Dir::kServerToClient, "CONNECT {}\r\n", "unknown protocol operation", "Unknown Protocol Operation"},
      {Dir::kServerToClient, "MSG foo 1\r\n", "MSG needs", "Unknown Protocol Operation"},
      {Dir::kServerToClient, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 12),
       "unknown protocol operation", "Unknown Protocol Operation"},
  };
  for (const auto& c : cases) {
    const Result r = check_all_splits(c.dir, c.wire);
    EXPECT_FALSE(r.ok) << c.wire;
    EXPECT_NE(r.error.find(c.reason), std::string::npos) << c.wire << " -> " << r.error;
    EXPECT_EQ(std::string(r.reply), c.reply) << c.wire;
    EXPECT_EQ(r.error.rfind("offset ", 0), 0u) << r.error;
  }
}

TEST(NatsParser, ControlLineLimitHoldsWithoutTheLineEnd) {
  Limits l;
  l.max_control_line = 64;
  // Exactly at the limit passes.
  const std::string ok_line = "SUB " + std::string(64 - 4 - 4, 'a') + " 1\r\n";
  ASSERT_EQ(ok_line.size(), 64u);
  EXPECT_TRUE(check_all_splits(Dir::kClientToServer, ok_line, l).ok);
  // One more byte fails, whole or split.
  const std::string long_line = "SUB " + std::string(64 - 4 - 3, 'a') + " 1\r\n";
  const Result r = check_all_splits(Dir::kClientToServer, long_line, l);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("control line too long"), std::string::npos);
  EXPECT_EQ(std::string(r.reply), "maximum control line exceeded");
  // A line that never ends fails as soon as it passes the limit, holding at most the limit.
  Parser p(Dir::kClientToServer, l);
  bool ok = true;
  for (int i = 0; i < 1000 && ok; ++i) ok = p.feed("AAAAAAAA", [](const Frame&) {});
  EXPECT_FALSE(ok);
  EXPECT_LE(p.offset(), 64u);
}

TEST(NatsParser, PayloadBoundIsNeverAllocated) {
  Limits l;
  l.max_payload = 1 << 20;
  const Result r = run(Dir::kClientToServer, {"PUB foo 9999999999\r\n"}, l);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(std::string(r.reply), "Maximum Payload Violation");
  // Within the bound a large payload is skipped by count, in pieces.
  Parser p(Dir::kClientToServer, l);
  int frames = 0;
  ASSERT_TRUE(p.feed("PUB foo 1048576\r\n", [&](const Frame&) { ++frames; }));
  const std::string chunk(4096, 'z');
  for (int i = 0; i < 256; ++i) ASSERT_TRUE(p.feed(chunk, [&](const Frame&) { ++frames; }));
  ASSERT_TRUE(p.feed("\r\nPING\r\n", [&](const Frame&) { ++frames; }));
  EXPECT_EQ(frames, 2);
}

TEST(NatsParser, GarbageAfterValidFramesKeepsEarlierFrames) {
  const Result r = check_all_splits(Dir::kClientToServer, "PING\r\nPUB a 1\r\nx\r\nGARBAGE\r\nPING\r\n");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.frames.size(), 2u);
  EXPECT_NE(r.error.find("offset 18:"), std::string::npos) << r.error;
}

TEST(NatsParser, RandomSplitsOfAStream) {
  std::string wire;
  for (int i = 0; i < 200; ++i) {
    const std::string payload(static_cast<size_t>(i * 7 % 300), static_cast<char>('a' + i % 26));
    wire += "PUB s." + std::to_string(i) + " " + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
    if (i % 5 == 0) wire += "HPUB h 12 15\r\nNATS/1.0\r\n\r\nabc\r\n";
  }
  const Result whole = run(Dir::kClientToServer, {wire});
  ASSERT_TRUE(whole.ok);
  ASSERT_EQ(whole.frames.size(), 240u);
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::string_view> pieces;
    size_t pos = 0;
    while (pos < wire.size()) {
      const size_t n = std::min<size_t>(wire.size() - pos, 1 + rng() % 97);
      pieces.push_back(std::string_view(wire).substr(pos, n));
      pos += n;
    }
    EXPECT_EQ(run(Dir::kClientToServer, pieces).frames, whole.frames);
  }
}

}  // namespace
}  // namespace evmesh::nats
