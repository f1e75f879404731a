#include "filters/kafka/codec/framing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "filters/kafka/codec/api_keys.h"
#include "filters/kafka/test/test_util.h"

namespace evmesh::kafka {
namespace {

std::string frame_of(std::string_view payload) { return make_frame({}, payload); }

struct Trace {
  std::vector<std::string> events;
  bool ok = true;
  std::string error;
  uint64_t offset = 0;
  bool boundary = false;
};

// Records heads and frames; asks for the whole payload of frames whose
// first payload byte is 'W'.
struct Recorder {
  Trace* t;
  bool head(const FrameHead& h) {
    t->events.push_back("head@" + std::to_string(h.start) + "+" + std::to_string(h.size) + ":" + std::string(h.prefix));
    return !h.prefix.empty() && h.prefix[0] == 'W';
  }
  void frame(const FrameHead& h, std::string_view payload) {
    t->events.push_back("frame@" + std::to_string(h.start) + ":" + std::string(payload));
  }
};

Trace run(const std::vector<std::string_view>& pieces, FrameLimits limits) {
  FrameSplitter s(limits);
  Trace t;
  Recorder rec{&t};
  for (auto p : pieces) {
    if (!s.feed(p, rec)) {
      t.ok = false;
      break;
    }
  }
  t.error = s.error();
  t.offset = s.offset();
  t.boundary = s.at_frame_boundary();
  return t;
}

// Whole, one byte at a time, and split in two at every position: the same
// events, verdict and error.
Trace check_all_splits(const std::string& wire, FrameLimits limits) {
  const Trace whole = run({wire}, limits);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < wire.size(); ++i) bytes.push_back(std::string_view(wire).substr(i, 1));
  const Trace one = run(bytes, limits);
  EXPECT_EQ(one.events, whole.events);
  EXPECT_EQ(one.ok, whole.ok);
  EXPECT_EQ(one.error, whole.error);
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    const std::string_view w(wire);
    const Trace two = run({w.substr(0, cut), w.substr(cut)}, limits);
    EXPECT_EQ(two.events, whole.events) << "cut at " << cut;
    EXPECT_EQ(two.ok, whole.ok) << "cut at " << cut;
    EXPECT_EQ(two.error, whole.error) << "cut at " << cut;
  }
  return whole;
}

TEST(KafkaFrameSplitter, FramesWholeAndSplitEverywhere) {
  FrameLimits limits;
  limits.prefix_bytes = 4;
  const std::string wire = frame_of("abcdefgh") + frame_of("Whole frame") + frame_of("") + frame_of("xy") +
                           frame_of("Wz");
  const Trace t = check_all_splits(wire, limits);
  ASSERT_TRUE(t.ok) << t.error;
  const std::vector<std::string> want = {
      "head@0+8:abcd",  "frame@0:",
      "head@12+11:Whol", "frame@12:Whole frame",
      "head@27+0:",     "frame@27:",
      "head@31+2:xy",   "frame@31:",
      "head@37+2:Wz",   "frame@37:Wz",
  };
  EXPECT_EQ(t.events, want);
  EXPECT_EQ(t.offset, wire.size());
  EXPECT_TRUE(t.boundary);
}

// With a bytes() method, every payload byte of frames not captured whole
// arrives in order, whatever the pieces.
struct Streamer {
  std::vector<std::string>* frames;
  std::string cur;
  bool head(const FrameHead&) { return false; }
  void bytes(const FrameHead&, uint64_t at, std::string_view piece) {
    EXPECT_EQ(at, cur.size());
    cur.append(piece);
  }
  void frame(const FrameHead& h, std::string_view) {
    EXPECT_EQ(cur.size(), h.size);
    frames->push_back(cur);
    cur.clear();
  }
};

TEST(KafkaFrameSplitter, PayloadBytesStreamWithoutCapture) {
  const std::string wire = frame_of("first frame payload") + frame_of("") + frame_of("x") + frame_of(std::string(700, 'z'));
  const std::vector<std::string> want = {"first frame payload", "", "x", std::string(700, 'z')};
  for (uint32_t prefix : {1u, 4u, 512u}) {
    for (size_t step : {size_t{1}, size_t{3}, size_t{64}, wire.size()}) {
      FrameLimits limits;
      limits.prefix_bytes = prefix;
      FrameSplitter s(limits);
      std::vector<std::string> frames;
      Streamer st{&frames, {}};
      for (size_t pos = 0; pos < wire.size(); pos += step) ASSERT_TRUE(s.feed(std::string_view(wire).substr(pos, step), st));
      EXPECT_EQ(frames, want) << "prefix " << prefix << " step " << step;
    }
  }
}

TEST(KafkaFrameSplitter, GarbageAfterFramesIsTheNextFrame) {
  // The splitter cannot know garbage: the next 4 bytes are a size. A huge
  // one is refused with its offset.
  FrameLimits limits;
  limits.max_frame = 1000;
  const std::string wire = frame_of("ok") + "garbage!";
  const Trace t = check_all_splits(wire, limits);
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.error, "offset 6: frame size 1734439522 exceeds max 1000");
}

TEST(KafkaFrameSplitter, NegativeAndOversizedSizes) {
  FrameLimits limits;
  limits.max_frame = 16;
  Trace t = check_all_splits(frame_of("ok") + std::string("\xff\xff\xff\xfe", 4), limits);
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.error, "offset 6: negative frame size -2");
  t = check_all_splits(std::string("\x00\x00\x00\x11", 4) + std::string(17, 'x'), limits);
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.error, "offset 0: frame size 17 exceeds max 16");
  // Exactly the max is fine.
  t = check_all_splits(frame_of(std::string(16, 'W')), limits);
  EXPECT_TRUE(t.ok);
  // After an error the splitter stays failed.
  FrameSplitter s(limits);
  Trace tr;
  Recorder rec{&tr};
  EXPECT_FALSE(s.feed(std::string("\x80\x00\x00\x00", 4), rec));
  EXPECT_FALSE(s.feed(frame_of("ok"), rec));
  EXPECT_TRUE(s.failed());
}

TEST(KafkaFrameSplitter, TruncatedStreamStopsMidFrame) {
  FrameSplitter s;
  Trace t;
  Recorder rec{&t};
  const std::string wire = frame_of("Wabcdef");
  ASSERT_TRUE(s.feed(std::string_view(wire).substr(0, 7), rec));
  EXPECT_FALSE(s.at_frame_boundary());
  EXPECT_EQ(s.frame_start(), 0u);
  EXPECT_EQ(t.events.size(), 0u);  // prefix (7 bytes) not complete yet
}

// ---- headers -----------------------------------------------------------------

std::string request_payload(int16_t key, int16_t version, int32_t corr, Str client, std::string_view body) {
  RequestHeader h;
  h.api_key = key;
  h.api_version = version;
  h.correlation_id = corr;
  h.client_id = client;
  h.header_version = request_header_version(key, version);
  std::string out;
  encode_request_header(h, &out);
  out += body;
  return out;
}

TEST(KafkaHeaders, HeaderVersionsFromTheTable) {
  EXPECT_EQ(request_header_version(api::kProduce, 8), 1);
  EXPECT_EQ(request_header_version(api::kProduce, 9), 2);
  EXPECT_EQ(request_header_version(api::kFetch, 11), 1);
  EXPECT_EQ(request_header_version(api::kFetch, 12), 2);
  EXPECT_EQ(request_header_version(api::kMetadata, 9), 2);
  EXPECT_EQ(request_header_version(api::kApiVersions, 3), 2);
  EXPECT_EQ(request_header_version(api::kControlledShutdown, 0), 0);
  EXPECT_EQ(request_header_version(api::kDescribeCluster, 0), 2);
  EXPECT_EQ(request_header_version(17, 1), 1);    // SaslHandshake: never flexible
  EXPECT_EQ(request_header_version(999, 5), 1);   // unknown
  EXPECT_EQ(response_header_version(api::kApiVersions, 4), 0);
  EXPECT_EQ(response_header_version(api::kMetadata, 12), 1);
  EXPECT_EQ(response_header_version(api::kMetadata, 8), 0);
  EXPECT_EQ(response_header_version(api::kFindCoordinator, 3), 1);
  EXPECT_STREQ(api_name(api::kFindCoordinator), "FindCoordinator");
  EXPECT_STREQ(api_name(-1), "unknown");
  for (int16_t k = 0; k < api_key_limit(); ++k) {
    const ApiSpec* a = find_api(k);
    ASSERT_NE(a, nullptr);
    EXPECT_LE(a->min_version, a->max_version) << a->name;
    EXPECT_LE(a->flexible_from, a->max_version) << a->name;
  }
}

TEST(KafkaHeaders, RequestHeaderV1V2AndV0) {
  struct Case {
    int16_t key, version;
    Str client;
    int want_hv;
  };
  for (const Case& c : {Case{api::kProduce, 8, Str::of("rdkafka"), 1}, Case{api::kProduce, 11, Str::of("c"), 2},
                        Case{api::kMetadata, 12, Str::none(), 2}, Case{api::kControlledShutdown, 0, Str::none(), 0},
                        Case{api::kApiVersions, 4, Str::of(""), 2}}) {
    const std::string body = "BODY";
    const std::string p = request_payload(c.key, c.version, 0x01020304, c.client, body);
    testing::BodyDecoder dec = [&](std::string_view in, size_t* consumed, Error* err) {
      RequestHeader h;
      if (decode_request_header(in, true, &h, err) != Status::kOk) return false;
      *consumed = h.size;
      return true;
    };
    testing::check_body_decoder(p.substr(0, p.size() - body.size()), dec, api_name(c.key), 4);
    RequestHeader h;
    Error err;
    ASSERT_EQ(decode_request_header(p, true, &h, &err), Status::kOk) << err.describe();
    EXPECT_EQ(h.api_key, c.key);
    EXPECT_EQ(h.api_version, c.version);
    EXPECT_EQ(h.correlation_id, 0x01020304);
    EXPECT_EQ(h.header_version, c.want_hv);
    EXPECT_TRUE(h.known);
    if (c.want_hv >= 1) {
      EXPECT_EQ(h.client_id, c.client);
    }
    EXPECT_EQ(p.substr(h.size), body);
    // A prefix that is too short asks for more rather than failing.
    RequestHeader h2;
    EXPECT_EQ(decode_request_header(std::string_view(p).substr(0, h.size - 1), false, &h2, &err), Status::kNeedMore);
  }
}

TEST(KafkaHeaders, UnknownApiKeyParsesHeaderAndLeavesTheBody) {
  const std::string p = request_payload(1234, 7, 42, Str::of("x"), "whatever");
  RequestHeader h;
  Error err;
  ASSERT_EQ(decode_request_header(p, true, &h, &err), Status::kOk);
  EXPECT_FALSE(h.known);
  EXPECT_EQ(h.api_key, 1234);
  EXPECT_EQ(h.correlation_id, 42);
  EXPECT_EQ(h.client_id, Str::of("x"));
  EXPECT_EQ(h.size, 11u);
}

TEST(KafkaHeaders, UnknownKeysAndVersionsKeepTheStreamInStep) {
  // Metadata v99 and api key 500 between two known requests: headers parsed,
  // bodies skipped by the frame size.
  const std::string wire = make_frame({}, request_payload(api::kMetadata, 12, 1, Str::of("c"), std::string(9, 'm'))) +
                           make_frame({}, request_payload(api::kMetadata, 99, 2, Str::of("c"), "??")) +
                           make_frame({}, request_payload(500, 0, 3, Str::of("c"), std::string(300, 'u'))) +
                           make_frame({}, request_payload(api::kProduce, 9, 4, Str::none(), "p"));
  struct Sink {
    std::vector<std::string> got;
    bool head(const FrameHead& h) {
      RequestHeader rh;
      Error err;
      EXPECT_EQ(decode_request_header(h.prefix, h.prefix.size() == h.size, &rh, &err), Status::kOk);
      got.push_back(std::to_string(rh.api_key) + "v" + std::to_string(rh.api_version) + "#" +
                    std::to_string(rh.correlation_id) + (rh.known ? "" : "?") + "+" +
                    std::to_string(h.size - rh.size));
      return false;
    }
    void frame(const FrameHead&, std::string_view) {}
  };
  for (size_t step : {size_t{1}, size_t{5}, wire.size()}) {
    FrameSplitter s;
    Sink sink;
    for (size_t pos = 0; pos < wire.size(); pos += step) ASSERT_TRUE(s.feed(std::string_view(wire).substr(pos, step), sink));
    EXPECT_TRUE(s.at_frame_boundary());
    EXPECT_EQ(sink.got, (std::vector<std::string>{"3v12#1+9", "3v99#2+2", "500v0#3?+300", "0v9#4+1"}));
  }
}

TEST(KafkaHeaders, MalformedRequestHeaders) {
  RequestHeader h;
  Error err;
  // client id longer than the frame
  std::string p("\x00\x00\x00\x05\x00\x00\x00\x01\x7f\x00zz", 12);
  EXPECT_EQ(decode_request_header(p, true, &h, &err), Status::kError);
  EXPECT_STREQ(err.reason, "string length exceeds frame");
  EXPECT_EQ(err.offset, 4u + 10);
  // negative version
  std::string q("\x00\x00\xff\xff\x00\x00\x00\x01\xff\xff", 10);
  EXPECT_EQ(decode_request_header(q, true, &h, &err), Status::kError);
  EXPECT_STREQ(err.reason, "negative api version");
  // too short to hold a header
  EXPECT_EQ(decode_request_header(std::string("\x00\x03", 2), true, &h, &err), Status::kError);
  EXPECT_EQ(decode_request_header(std::string("\x00\x03", 2), false, &h, &err), Status::kNeedMore);
  // a negative client id length is an error even in a prefix
  std::string neg("\x00\x00\x00\x05\x00\x00\x00\x01\xff\xf0", 10);
  EXPECT_EQ(decode_request_header(neg, false, &h, &err), Status::kError);
  EXPECT_STREQ(err.reason, "negative string length");
}

TEST(KafkaHeaders, ResponseHeaderV0AndV1) {
  for (int hv : {0, 1}) {
    std::string p;
    encode_response_header(77, hv, &p);
    EXPECT_EQ(p.size(), hv ? 5u : 4u);
    testing::BodyDecoder dec = [&](std::string_view in, size_t* consumed, Error* err) {
      ResponseHeader h;
      if (decode_response_header(in, hv, &h, err) != Status::kOk) return false;
      *consumed = h.size;
      return h.correlation_id == 77;
    };
    testing::check_body_decoder(p, dec, "response header", 4);
  }
}

TEST(KafkaCorrelation, InOrderAndBounded) {
  CorrelationMap m(3);
  EXPECT_TRUE(m.add({1, api::kMetadata, 12, 0}));
  EXPECT_TRUE(m.add({2, api::kProduce, 9, 0}));
  EXPECT_TRUE(m.add({3, api::kFetch, 16, 0}));
  EXPECT_FALSE(m.add({4, api::kFetch, 16, 0}));
  InFlight r;
  ASSERT_TRUE(m.take(1, &r));
  EXPECT_EQ(r.api_key, api::kMetadata);
  EXPECT_EQ(r.api_version, 12);
  EXPECT_FALSE(m.take(1, &r));
  // A response for 3 drops 2 (never answered).
  ASSERT_TRUE(m.take(3, &r));
  EXPECT_EQ(r.api_key, api::kFetch);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_FALSE(m.take(99, &r));
  // acks=0 produces give way when full; others do not.
  CorrelationMap f(2);
  EXPECT_TRUE(f.add({10, api::kProduce, 9, 0, false}));
  EXPECT_TRUE(f.add({11, api::kMetadata, 12, 0}));
  EXPECT_TRUE(f.add({12, api::kMetadata, 12, 0}));
  EXPECT_EQ(f.size(), 2u);
  EXPECT_EQ(f.awaiting(), 2u);
  EXPECT_FALSE(f.add({13, api::kProduce, 9, 0, false}));
  ASSERT_TRUE(f.take(11, &r));
  EXPECT_FALSE(f.take(10, &r));
}

}  // namespace
}  // namespace evmesh::kafka
