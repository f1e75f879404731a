// Parser and policy cost per message, without Envoy:
//   bazel run -c opt //filters/nats:parser_bench
#include <benchmark/benchmark.h>

#include <string>

#include "filters/nats/codec/parser.h"
#include "filters/nats/policy/config.h"

namespace evmesh::nats {
namespace {

std::string stream(size_t payload, int n, const char* op = "PUB", const char* extra = "") {
  std::string one = std::string(op) + " orders.new " + extra + std::to_string(payload) + "\r\n" +
                    std::string(payload, 'x') + "\r\n";
  std::string s;
  for (int i = 0; i < n; ++i) s += one;
  return s;
}

void BM_ParsePub(benchmark::State& state) {
  const std::string data = stream(static_cast<size_t>(state.range(0)), 1000);
  for (auto _ : state) {
    Parser p(Dir::kClientToServer, {});
    uint64_t frames = 0;
    for (size_t i = 0; i < data.size(); i += 16384) {
      p.feed(std::string_view(data).substr(i, 16384), [&](const Frame& f) { frames += f.payload_len != 0; });
    }
    benchmark::DoNotOptimize(frames);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * data.size());
}
BENCHMARK(BM_ParsePub)->Arg(16)->Arg(128)->Arg(4096);

void BM_ParseMsg(benchmark::State& state) {
  const std::string data = stream(static_cast<size_t>(state.range(0)), 1000, "MSG", "1 ");
  for (auto _ : state) {
    Parser p(Dir::kServerToClient, {});
    uint64_t frames = 0;
    for (size_t i = 0; i < data.size(); i += 16384) {
      p.feed(std::string_view(data).substr(i, 16384), [&](const Frame& f) { frames += f.payload_len != 0; });
    }
    benchmark::DoNotOptimize(frames);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_ParseMsg)->Arg(16);

void BM_AclAndGroups(benchmark::State& state) {
  std::string err;
  auto cfg = parse_nats_config(R"({"stat_prefix": "b",
    "acl": {"publish": {"allow": ["orders.>", "_INBOX.>"], "deny": ["orders.secret.>"]}},
    "subjects": [{"name": "a", "pattern": "payments.>"}, {"name": "orders", "pattern": "orders.>"}]})", &err);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cfg->acl.allow_publish("orders.new"));
    benchmark::DoNotOptimize(cfg->groups.classify("orders.new"));
  }
}
BENCHMARK(BM_AclAndGroups);

}  // namespace
}  // namespace evmesh::nats

BENCHMARK_MAIN();
