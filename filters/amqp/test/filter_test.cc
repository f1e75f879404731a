// The AMQP filter against a fake Envoy: what reaches the broker and the
// client, fed whole and in pieces.
#include "filters/amqp/filter/amqp_filter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "filters/amqp/codec/encode.h"
#include "filters/amqp/test/amqp_wire.h"
#include "filters/common/test/fake_envoy.h"

namespace evmesh {
const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {{"amqp", &amqp::make_amqp_config}};
  return kinds;
}
}  // namespace evmesh

namespace evmesh::amqp {
namespace {

using evmesh::testing::fake_envoy;
using testing::W;
using testing::body;
using testing::header;
using testing::method;
using testing::proto;
using testing::publish;

int config_token, filter_token;

struct Harness {
  std::unique_ptr<FilterConfig> cfg;
  std::unique_ptr<NetworkFilter> f;
  std::string upstream;  // bytes the broker received
  std::string client;    // bytes the client received
  std::vector<int> statuses;

  // `server_first`: the broker has sent Connection.Start (as RabbitMQ does
  // before the client can do anything); `client` then holds what follows it.
  explicit Harness(const std::string& json, size_t chunk = 0, bool server_first = true) {
    fake_envoy().reset();
    fake_envoy().chunk = chunk;
    std::string err;
    cfg = make_amqp_config(&config_token, json, &err);
    EXPECT_TRUE(cfg) << err;
    f = cfg->create(&filter_token);
    f->on_new_connection();
    if (server_first) {
      server_sends(method(0, 10, 10, W().u8(0).u8(9).ls("").ls("PLAIN").ls("en_US").b));
      client.clear();
    }
  }
  void client_sends(std::string_view d, bool end = false) {
    auto& fe = fake_envoy();
    fe.read_buf.append(d.data(), d.size());
    const int st = f->on_read(fe.read_buf.size(), end);
    statuses.push_back(st);
    client += fe.to_client;
    fe.to_client.clear();
    if (st == EVM_NET_CONTINUE) {
      upstream += fe.read_buf;
      fe.read_buf.clear();
    }
  }
  void server_sends(std::string_view d) {
    auto& fe = fake_envoy();
    fe.write_buf.assign(d.data(), d.size());
    if (f->on_write(d.size(), false) == EVM_NET_CONTINUE) client += fe.write_buf;
    fe.write_buf.clear();
  }
  void client_sends_in_pieces(const std::string& d, size_t step) {
    for (size_t i = 0; i < d.size(); i += step) client_sends(std::string_view(d).substr(i, step));
  }
  void server_sends_in_pieces(const std::string& d, size_t step) {
    for (size_t i = 0; i < d.size(); i += step) server_sends(std::string_view(d).substr(i, step));
  }
};

// Frames of a byte stream, described.
std::vector<std::string> frames(Dir dir, const std::string& wire) {
  Parser p(dir, 1 << 20);
  std::vector<std::string> out;
  const bool ok = p.feed(wire, [&](const Frame& f) {
    std::string s = std::to_string(static_cast<int>(f.type)) + "/ch" + std::to_string(f.channel);
    if (f.method) {
      s += " " + std::string(f.method->name());
      if (f.method->reply_code) s += " " + std::to_string(f.method->reply_code) + " " + std::string(f.method->reply_text);
      if (!f.method->exchange.empty()) s += " x=" + std::string(f.method->exchange);
      if (f.method->id() == kConnectionTune || f.method->id() == kConnectionTuneOk) {
        s += " fmax=" + std::to_string(f.method->frame_max);
      }
    }
    if (f.header) s += " size=" + std::to_string(f.header->body_size);
    out.push_back(s);
  });
  EXPECT_TRUE(ok) << p.error();
  EXPECT_TRUE(p.at_frame_boundary());
  return out;
}

const char* kAclConfig = R"({"stat_prefix": "t",
  "acl": {"publish": {"deny": [{"exchange": "ex", "routing_key": "secret.#"}]},
          "consume": {"deny": ["private.*"]}},
  "exchanges": [{"name": "ex", "exchange": "ex"}], "queues": [{"name": "work", "pattern": "work.#"}]})";

std::string handshake_c2s() {
  return proto() + method(0, 10, 11, W().ls("").ss("PLAIN").ls(std::string("\0guest\0pw", 9)).ss("en_US").b) +
         method(0, 10, 31, W().u16(2047).u32(131072).u16(60).b) + method(0, 10, 40, W().ss("/").ss("").u8(0).b) +
         method(1, 20, 10, W().ss("").b) + method(2, 20, 10, W().ss("").b);
}

std::string message(uint16_t ch, const char* exchange, const char* rk, const std::string& data) {
  return publish(ch, exchange, rk) + header(ch, data.size()) + body(ch, data);
}

TEST(AmqpFilter, AllowedTrafficPassesUntouchedInAnyPieces) {
  const std::string c2s = handshake_c2s() + message(1, "ex", "a.b", "hello") + message(2, "", "q", std::string(300, 'x')) +
                          method(1, 60, 80, W().u64(1).u8(0).b);
  for (size_t step : {c2s.size(), size_t{1}, size_t{2}, size_t{7}, size_t{13}, size_t{64}}) {
    for (size_t chunk : {size_t{0}, size_t{5}}) {
      Harness h(kAclConfig, chunk);
      h.client_sends_in_pieces(c2s, step);
      EXPECT_EQ(h.upstream, c2s) << "step " << step << " chunk " << chunk;
      EXPECT_TRUE(h.client.empty());
      EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.ex.published_msgs"), 1);
      EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.other.published_msgs"), 1);
      EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.other.published_bytes"), 300);
      EXPECT_EQ(fake_envoy().metric("amqp.t.connections_active"), 1);
    }
  }
}

struct Outcome {
  std::string upstream, client;
};

// The denial scenario, fed in pieces of `step` bytes.
Outcome denial_scenario(size_t step, size_t chunk, uint32_t buffer_limit = 0) {
  Harness h(kAclConfig, chunk);
  fake_envoy().buffer_limit = buffer_limit;
  // ch1: denied publish (method, header, 2 bodies) then an ack; ch2: allowed publish.
  const std::string c2s = handshake_c2s() + publish(1, "ex", "secret.a") + header(1, 6) + body(1, "abc") +
                          body(1, "def") + method(1, 60, 80, W().u64(1).u8(0).b) + message(2, "ex", "ok.a", "fine");
  h.client_sends_in_pieces(c2s, step);
  // The broker: a delivery on ch1 still in flight, our Close answered, a delivery on ch2.
  const std::string s2c = method(1, 60, 60, W().ss("c1").u64(5).u8(0).ss("ex").ss("k").b) + header(1, 2) +
                          body(1, "zz") + encode_channel_close_ok(1) +
                          method(2, 60, 60, W().ss("c2").u64(1).u8(0).ss("ex").ss("k").b) + header(2, 1) + body(2, "y");
  h.server_sends_in_pieces(s2c, step);
  // The client answers the 403 and opens channel 1 again.
  h.client_sends_in_pieces(encode_channel_close_ok(1) + method(1, 20, 10, W().ss("").b), step);
  h.server_sends_in_pieces(method(1, 20, 11, W().ls("").b), step);
  h.client_sends_in_pieces(message(1, "ex", "ok.b", "again"), step);
  return {h.upstream, h.client};
}

TEST(AmqpFilter, DeniedPublishClosesOnlyItsChannel) {
  const Outcome o = denial_scenario(1 << 20, 0);
  const std::vector<std::string> up = frames(Dir::kClientToServer, o.upstream);
  const std::vector<std::string> want_up = {
      "0/ch0",
      "1/ch0 connection.start-ok",
      "1/ch0 connection.tune-ok fmax=131072",
      "1/ch0 connection.open",
      "1/ch1 channel.open",
      "1/ch2 channel.open",
      "1/ch1 channel.close 200 evmesh: channel closed by policy",  // in place of the denied publish
      "1/ch2 basic.publish x=ex",
      "2/ch2 size=4",
      "3/ch2",
      "1/ch1 channel.open",  // the client's Close-Ok was swallowed
      "1/ch1 basic.publish x=ex",
      "2/ch1 size=5",
      "3/ch1",
  };
  EXPECT_EQ(up, want_up);
  const std::vector<std::string> cl = frames(Dir::kServerToClient, o.client);
  const std::vector<std::string> want_cl = {
      "1/ch1 channel.close 403 ACCESS_REFUSED - write access to topic 'secret.a' in exchange 'ex' in vhost '/' "
      "refused for user 'guest'",
      "1/ch2 basic.deliver x=ex",
      "2/ch2 size=1",
      "3/ch2",
      "1/ch1 channel.open-ok",
  };
  EXPECT_EQ(cl, want_cl);
  // The 403 names the failing method: basic.publish (60, 40).
  Parser p(Dir::kServerToClient, 1 << 20);
  p.feed(o.client, [](const Frame& f) {
    if (f.method && f.method->id() == kChannelClose) {
      EXPECT_EQ(f.method->failed_class_id, 60);
      EXPECT_EQ(f.method->failed_method_id, 40);
    }
  });
  EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.ex.publish_denied"), 1);
  EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.ex.published_msgs"), 2);
  EXPECT_EQ(fake_envoy().metric("amqp.t.channels_closed_by_policy"), 1);
}

TEST(AmqpFilter, DenialIsTheSameInAnyPieces) {
  const Outcome whole = denial_scenario(1 << 20, 0);
  for (size_t step = 1; step <= 40; ++step) {
    for (size_t chunk : {size_t{0}, size_t{3}}) {
      // A tiny buffer limit: undecided tails are carried instead of held.
      for (uint32_t limit : {0u, 16u}) {
        const Outcome o = denial_scenario(step, chunk, limit);
        EXPECT_EQ(o.upstream, whole.upstream) << "step " << step << " chunk " << chunk << " limit " << limit;
        EXPECT_EQ(o.client, whole.client) << "step " << step << " chunk " << chunk << " limit " << limit;
      }
    }
  }
}

TEST(AmqpFilter, ReopenWaitsForTheBrokersCloseOk) {
  Harness h(kAclConfig);
  h.client_sends(handshake_c2s() + publish(1, "ex", "secret.x") + header(1, 0));
  const size_t before = h.upstream.size();
  // The client answers our 403 and reopens channel 1 at once, then publishes on 2.
  h.client_sends(encode_channel_close_ok(1) + method(1, 20, 10, W().ss("").b) + message(2, "ex", "a", "b"));
  EXPECT_EQ(h.statuses.back(), EVM_NET_STOP_ITERATION);  // held: the broker still knows the old channel 1
  EXPECT_EQ(h.upstream.size(), before);
  h.server_sends(encode_channel_close_ok(1));
  ASSERT_EQ(fake_envoy().committed_count(), 1u);  // the release is posted to the event loop
  EXPECT_EQ(fake_envoy().committed.back(), 2u);
  h.f->on_scheduled(2);
  EXPECT_EQ(fake_envoy().continue_reading, 1);
  h.upstream += fake_envoy().read_buf;
  fake_envoy().read_buf.clear();
  const std::vector<std::string> tail = frames(Dir::kClientToServer, proto() + h.upstream.substr(before));
  const std::vector<std::string> want = {"0/ch0", "1/ch1 channel.open", "1/ch2 basic.publish x=ex", "2/ch2 size=1",
                                         "3/ch2"};
  EXPECT_EQ(tail, want);
  // Nothing of the old channel reached the client but our 403.
  EXPECT_EQ(frames(Dir::kServerToClient, h.client).size(), 1u);
  // Later reads flow again.
  h.client_sends(testing::heartbeat());
  EXPECT_EQ(h.statuses.back(), EVM_NET_CONTINUE);
}

TEST(AmqpFilter, BrokerCloseCrossingOursIsAnswered) {
  Harness h(kAclConfig);
  h.client_sends(handshake_c2s() + publish(1, "ex", "secret.x") + header(1, 0));
  // The broker closed channel 1 on its own before seeing our Close.
  h.server_sends(encode_close(1, 404, "NOT_FOUND - no queue", 50, 10) + encode_channel_close_ok(1));
  // Its Close is swallowed and answered at the next client frame boundary.
  const size_t before = h.upstream.size();
  h.client_sends(testing::heartbeat());
  const std::vector<std::string> tail = frames(Dir::kClientToServer, proto() + h.upstream.substr(before));
  const std::vector<std::string> want = {"0/ch0", "1/ch1 channel.close-ok", "8/ch0"};
  EXPECT_EQ(tail, want);
  const std::vector<std::string> cl = frames(Dir::kServerToClient, h.client);
  ASSERT_EQ(cl.size(), 1u);  // only our 403
}

TEST(AmqpFilter, ConsumeAndGetAclAndQueueMetrics) {
  Harness h(kAclConfig);
  h.client_sends(handshake_c2s() + method(1, 60, 20, W().u16(0).ss("work.1").ss("").u8(0).ls("").b) +
                 method(2, 60, 70, W().u16(0).ss("private.x").u8(0).b));
  const std::vector<std::string> cl = frames(Dir::kServerToClient, h.client);
  ASSERT_EQ(cl.size(), 1u);
  EXPECT_EQ(cl[0], "1/ch2 channel.close 403 ACCESS_REFUSED - access to queue 'private.x' in vhost '/' refused for user 'guest'");
  h.server_sends(method(1, 60, 21, W().ss("amq.ctag-1").b) +
                 method(1, 60, 60, W().ss("amq.ctag-1").u64(1).u8(0).ss("ex").ss("k").b) + header(1, 10) +
                 body(1, "0123456789"));
  h.client_sends(method(1, 60, 80, W().u64(1).u8(0).b) + method(1, 60, 120, W().u64(2).u8(2).b) +
                 method(1, 60, 90, W().u64(3).u8(0).b));
  EXPECT_EQ(fake_envoy().metric("amqp.t.queue.work.delivered_msgs"), 1);
  EXPECT_EQ(fake_envoy().metric("amqp.t.queue.work.delivered_bytes"), 10);
  EXPECT_EQ(fake_envoy().metric("amqp.t.queue.work.acks"), 1);
  EXPECT_EQ(fake_envoy().metric("amqp.t.queue.work.nacks"), 1);
  EXPECT_EQ(fake_envoy().metric("amqp.t.queue.work.rejects"), 1);
  EXPECT_EQ(fake_envoy().metric("amqp.t.queue.other.consume_denied"), 1);
}

TEST(AmqpFilter, ReturnsAndConfirms) {
  Harness h(kAclConfig);
  h.client_sends(handshake_c2s() + method(1, 85, 10, W().u8(0).b) + message(1, "ex", "a", "m"));
  h.server_sends(method(1, 60, 50, W().u16(312).ss("NO_ROUTE").ss("ex").ss("a").b) + header(1, 1) + body(1, "m") +
                 method(1, 60, 80, W().u64(1).u8(0).b) + method(1, 60, 120, W().u64(2).u8(0).b));
  EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.ex.returned_msgs"), 1);
  EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.ex.confirm_acks"), 1);
  EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.ex.confirm_nacks"), 1);
}

TEST(AmqpFilter, BodyLimitRefusesTheWholeMessageEvenWhenSplit) {
  const char* cfg = R"({"stat_prefix": "t", "max_body_size": 10})";
  for (size_t step : {size_t{1 << 20}, size_t{1}, size_t{9}}) {
    Harness h(cfg);
    h.client_sends(handshake_c2s());
    // The publish method arrives alone: it is held until its header.
    const std::string big = message(1, "ex", "k", std::string(11, 'b'));
    const std::string small = message(2, "ex", "k", std::string(10, 's'));
    h.client_sends_in_pieces(publish(1, "ex", "k"), step);
    EXPECT_EQ(h.statuses.back(), EVM_NET_STOP_ITERATION);
    h.client_sends_in_pieces(big.substr(publish(1, "ex", "k").size()) + small, step);
    const std::vector<std::string> up = frames(Dir::kClientToServer, h.upstream);
    const std::vector<std::string> want_tail = {"1/ch1 channel.close 200 evmesh: channel closed by policy",
                                                "1/ch2 basic.publish x=ex", "2/ch2 size=10", "3/ch2"};
    ASSERT_GE(up.size(), 4u);
    EXPECT_EQ(std::vector<std::string>(up.end() - 4, up.end()), want_tail) << "step " << step;
    const std::vector<std::string> cl = frames(Dir::kServerToClient, h.client);
    ASSERT_EQ(cl.size(), 1u);
    EXPECT_EQ(cl[0], "1/ch1 channel.close 406 PRECONDITION_FAILED - message size 11 is larger than configured max size 10");
    EXPECT_EQ(fake_envoy().metric("amqp.t.exchange.other.body_too_large"), 1);
  }
}

TEST(AmqpFilter, LargeBuffersForwardTheDecidedPrefixAndCarryTheRest) {
  Harness h(R"({"stat_prefix": "t", "max_body_size": 100000})");
  fake_envoy().buffer_limit = 1 << 20;  // threshold 16 KiB
  std::string prefix = handshake_c2s();
  for (int i = 0; i < 50; ++i) prefix += message(2, "ex", "k", std::string(1000, 'p'));
  const std::string pub = publish(1, "ex", "k");
  const std::string rest = header(1, 3) + body(1, "abc") + method(2, 60, 80, W().u64(1).u8(0).b);
  // Ends with a publish method awaiting its header, whose first bytes follow.
  h.client_sends(prefix + pub + rest.substr(0, 5));
  EXPECT_EQ(h.statuses.back(), EVM_NET_CONTINUE);
  EXPECT_TRUE(h.upstream == prefix) << h.upstream.size() << " vs " << prefix.size();  // the undecided tail stays
  h.client_sends(rest.substr(5, 5));  // still no complete header: carried again
  EXPECT_TRUE(h.upstream == prefix) << h.upstream.size() << " vs " << prefix.size();
  h.client_sends(rest.substr(10));
  const std::string all = prefix + pub + rest;
  EXPECT_TRUE(h.upstream == all) << h.upstream.size() << " vs " << all.size();
}

TEST(AmqpFilter, TuneIsCappedAndFrameMaxEnforced) {
  Harness h(R"({"stat_prefix": "t", "max_frame": 8192})");
  EXPECT_TRUE(h.client.empty());
  h.server_sends(method(0, 10, 30, W().u16(2047).u32(0).u16(60).b));
  const std::vector<std::string> cl = frames(Dir::kServerToClient, h.client);
  ASSERT_EQ(cl.size(), 1u);
  EXPECT_EQ(cl[0], "1/ch0 connection.tune fmax=8192");
  h.client_sends(proto() + method(0, 10, 31, W().u16(2047).u32(8192).u16(60).b) + body(1, std::string(8184, 'x')));
  EXPECT_FALSE(fake_envoy().closed);
  h.client_sends(body(1, std::string(8185, 'x')));
  EXPECT_TRUE(fake_envoy().closed);
  EXPECT_EQ(fake_envoy().metric("amqp.t.c2s.protocol_errors"), 1);
  const std::vector<std::string> cl2 = frames(Dir::kServerToClient, h.client);
  ASSERT_EQ(cl2.size(), 2u);
  EXPECT_NE(cl2[1].find("connection.close 501 FRAME_ERROR - offset"), std::string::npos) << cl2[1];
}

TEST(AmqpFilter, WrongProtocolHeaderIsAnsweredWithOurs) {
  Harness h(kAclConfig, 0, /*server_first=*/false);
  h.client_sends(std::string("AMQP\0\0\x09\x00", 8));
  EXPECT_EQ(h.client, proto());
  EXPECT_TRUE(fake_envoy().closed);
  EXPECT_TRUE(h.upstream.empty());
}

TEST(AmqpFilter, MalformedServerDataClosesTheConnection) {
  Harness h(kAclConfig);
  std::string bad = method(0, 10, 41, W().ss("").b);
  bad.back() = 0;
  h.server_sends(bad);
  EXPECT_TRUE(fake_envoy().closed);
  EXPECT_EQ(fake_envoy().metric("amqp.t.s2c.protocol_errors"), 1);
}

TEST(AmqpFilter, ConnectionGaugeFollowsEvents) {
  Harness h(kAclConfig);
  EXPECT_EQ(fake_envoy().metric("amqp.t.connections_active"), 1);
  h.f->on_event(EVM_EVENT_REMOTE_CLOSE);
  h.f->on_event(EVM_EVENT_LOCAL_CLOSE);
  EXPECT_EQ(fake_envoy().metric("amqp.t.connections_active"), 0);
  EXPECT_EQ(fake_envoy().metric("amqp.t.connections_total"), 1);
}

uint64_t g_now = 0;
uint64_t fake_now() { return g_now; }

TEST(AmqpFilter, ThrottleHoldsReadsAndReleasesInOrder) {
  constexpr uint64_t kSec = 1000000000ull;
  g_now = 1000 * kSec;
  std::string c2s = handshake_c2s();
  for (int i = 0; i < 12; ++i) c2s += message(1, "ex", "k", "m" + std::to_string(i));
  c2s += message(2, "free", "k", "not throttled");
  {
    Harness h(R"({"stat_prefix": "t", "throttle": [{"exchange": "ex", "messages_per_second": 10}]})");
    static_cast<AmqpFilterConfig*>(h.cfg.get())->set_clock(&fake_now);
    h.client_sends(c2s);
    // 10 messages of burst, 2 in debt: 0.2 s.
    EXPECT_EQ(h.statuses.back(), EVM_NET_STOP_ITERATION);
    EXPECT_TRUE(h.upstream.empty());
    EXPECT_EQ(fake_envoy().metric("amqp.t.throttled"), 1);
    for (int i = 0; i < 200 && fake_envoy().committed_count() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(fake_envoy().committed_count(), 1u);
    g_now += kSec / 10;  // not yet
    h.f->on_scheduled(1);
    EXPECT_EQ(fake_envoy().continue_reading, 0);
    for (int i = 0; i < 200 && fake_envoy().committed_count() == 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(fake_envoy().committed_count(), 2u);
    g_now += kSec / 10 + 1;
    h.f->on_scheduled(1);
    EXPECT_EQ(fake_envoy().continue_reading, 1);
    // Envoy hands the held buffer on: everything, in order, untouched.
    h.upstream += fake_envoy().read_buf;
    fake_envoy().read_buf.clear();
    EXPECT_EQ(h.upstream, c2s);
    // Later reads pass while the bucket has tokens.
    g_now += 10 * kSec;
    h.client_sends(message(1, "ex", "k", "later"));
    EXPECT_EQ(h.statuses.back(), EVM_NET_CONTINUE);
    EXPECT_EQ(h.upstream, c2s + message(1, "ex", "k", "later"));
  }
  EXPECT_EQ(fake_envoy().schedulers, 0);  // deleted with the filter
}

TEST(AmqpFilter, ThrottleReleaseCarriesAPartialFrame) {
  constexpr uint64_t kSec = 1000000000ull;
  g_now = 2000 * kSec;
  Harness h(R"({"stat_prefix": "t", "throttle": [{"exchange": "ex", "messages_per_second": 1}]})");
  static_cast<AmqpFilterConfig*>(h.cfg.get())->set_clock(&fake_now);
  const std::string m2 = message(1, "ex", "k", "2");
  h.client_sends(handshake_c2s() + message(1, "ex", "k", "1") + message(1, "ex", "k", "x") + m2.substr(0, 9));
  EXPECT_EQ(h.statuses.back(), EVM_NET_STOP_ITERATION);  // in debt, and ends inside a frame
  g_now += 2 * kSec;
  h.f->on_scheduled(1);
  ASSERT_EQ(fake_envoy().continue_reading, 1);  // released without waiting for another read
  h.upstream += fake_envoy().read_buf;
  fake_envoy().read_buf.clear();
  EXPECT_TRUE(h.upstream == handshake_c2s() + message(1, "ex", "k", "1") + message(1, "ex", "k", "x"));
  h.client_sends(m2.substr(9));  // the carried partial frame comes back in front
  EXPECT_TRUE(h.upstream == handshake_c2s() + message(1, "ex", "k", "1") + message(1, "ex", "k", "x") + m2);
}

TEST(AmqpFilter, NoLocalReplyBeforeTheServersFirstByte) {
  // A server may open with a protocol header (refusing ours): nothing of ours may precede it.
  Harness h(kAclConfig, 0, /*server_first=*/false);
  h.client_sends(handshake_c2s() + publish(1, "ex", "secret.a") + header(1, 0));
  EXPECT_TRUE(h.client.empty());
  h.server_sends(proto());
  EXPECT_EQ(h.client.substr(0, 8), proto());
  EXPECT_EQ(frames(Dir::kServerToClient, h.client).size(), 2u);  // header, then our 403
}

TEST(AmqpFilter, ThrottleBytesPerSecond) {
  constexpr uint64_t kSec = 1000000000ull;
  g_now = 5 * kSec;
  Harness h(R"({"stat_prefix": "t", "throttle": [{"exchange": "*", "bytes_per_second": 100}]})");
  static_cast<AmqpFilterConfig*>(h.cfg.get())->set_clock(&fake_now);
  h.client_sends(handshake_c2s() + message(1, "a", "k", std::string(100, 'x')));
  EXPECT_EQ(h.statuses.back(), EVM_NET_CONTINUE);  // exactly the burst
  h.client_sends(message(1, "b", "k", std::string(50, 'y')));
  EXPECT_EQ(h.statuses.back(), EVM_NET_STOP_ITERATION);  // 0.5 s of debt
  g_now += kSec;
  h.client_sends(testing::heartbeat());  // a later read finds the debt repaid
  EXPECT_EQ(h.statuses.back(), EVM_NET_CONTINUE);
}

TEST(AmqpFilter, RejectsBadConfig) {
  std::string err;
  EXPECT_EQ(make_amqp_config(&config_token, R"({"stat_prefix": ""})", &err), nullptr);
  EXPECT_EQ(err, "stat_prefix: must be 1-64 characters of [A-Za-z0-9_-]");
}

}  // namespace
}  // namespace evmesh::amqp
