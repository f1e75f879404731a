// Micro-benchmarks of the Kafka codec's hot paths (not a test):
//   bazel run //filters/kafka:codec_bench
// The filter's budget is Envoy CPU per MB within 1.15x of tcp_proxy: these
// say what each per-byte step costs.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "filters/kafka/codec/framing.h"
#include "filters/kafka/codec/messages.h"
#include "filters/kafka/codec/records.h"
#include "filters/kafka/codec/stream.h"
#include "filters/kafka/test/batch_builder.h"

namespace evmesh::kafka {
namespace {

std::string big_batches(size_t target, int codec) {
  std::vector<testing::TestRecord> recs;
  static const std::string value(1000, 'v');
  for (int i = 0; i < 100; ++i) {
    testing::TestRecord r;
    r.value = Str::of(value);
    recs.push_back(r);
  }
  std::string out;
  int64_t base = 0;
  while (out.size() < target) {
    out += testing::make_batch(recs, codec, base);
    base += 100;
  }
  return out;
}

std::string fetch_body(const std::string& records) {
  std::string b;
  Writer w(&b);
  w.i32(0);
  w.i16(0);
  w.i32(0);
  w.array(true, 1);
  w.string(true, Str::of("orders"));
  w.array(true, 1);
  w.i32(0);
  w.i16(0);
  w.i64(0);
  w.i64(0);
  w.i64(0);
  w.array(true, -1);
  w.i32(-1);
  w.bytes(true, Str::of(records));
  w.no_tagged_fields();
  w.no_tagged_fields();
  w.no_tagged_fields();
  return b;
}

void BM_Crc32c(benchmark::State& st) {
  const std::string data(1 << 20, 'x');
  for (auto _ : st) benchmark::DoNotOptimize(crc32c(data.data(), data.size()));
  st.SetBytesProcessed(st.iterations() * data.size());
}
BENCHMARK(BM_Crc32c);

void BM_Crc32cPortable(benchmark::State& st) {
  const std::string data(1 << 20, 'x');
  for (auto _ : st) benchmark::DoNotOptimize(crc32c_portable(data.data(), data.size()));
  st.SetBytesProcessed(st.iterations() * data.size());
}
BENCHMARK(BM_Crc32cPortable);

struct NullSink : WalkSink {
  uint64_t records = 0;
  void batch(const BatchHeader& h, uint64_t, uint64_t, bool, bool, bool) override { records += h.records_count; }
};

// A 1 MiB fetch response walked in 16 KiB chunks (Envoy's slice size).
void BM_WalkFetch(benchmark::State& st) {
  const std::string body = fetch_body(big_batches(1 << 20, 0));
  const bool crc = st.range(0) != 0;
  for (auto _ : st) {
    RecordsBodyWalker w(RecordsBodyWalker::Kind::kFetchResponse, 12, body.size(), 0, crc);
    NullSink sink;
    for (size_t pos = 0; pos < body.size(); pos += 16384) w.feed(std::string_view(body).substr(pos, 16384), sink);
    benchmark::DoNotOptimize(sink.records);
  }
  st.SetBytesProcessed(st.iterations() * body.size());
}
BENCHMARK(BM_WalkFetch)->Arg(0)->Arg(1);

// Frames of 1 MiB split in 16 KiB chunks, not captured (headers only).
void BM_SplitFrames(benchmark::State& st) {
  std::string wire;
  for (int i = 0; i < 4; ++i) wire += make_frame(std::string(20, 'h'), std::string(1 << 20, 'b'));
  struct Sink {
    uint64_t n = 0;
    bool head(const FrameHead& h) {
      n += h.prefix.size();
      return false;
    }
    void frame(const FrameHead&, std::string_view) {}
  };
  for (auto _ : st) {
    FrameSplitter s;
    Sink sink;
    for (size_t pos = 0; pos < wire.size(); pos += 16384) s.feed(std::string_view(wire).substr(pos, 16384), sink);
    benchmark::DoNotOptimize(sink.n);
  }
  st.SetBytesProcessed(st.iterations() * wire.size());
}
BENCHMARK(BM_SplitFrames);

void BM_CountRecords(benchmark::State& st) {
  const std::string blob = big_batches(1 << 20, 0);
  for (auto _ : st) {
    RecordCounts c;
    Error err;
    count_records(blob, true, &c, &err);
    benchmark::DoNotOptimize(c.records);
  }
  st.SetBytesProcessed(st.iterations() * blob.size());
}
BENCHMARK(BM_CountRecords);

void BM_DecompressAndIterate(benchmark::State& st) {
  const std::string blob = big_batches(1 << 20, static_cast<int>(st.range(0)));
  std::string scratch;
  uint64_t raw = 0;
  for (auto _ : st) {
    BatchIterator it(blob, false);
    Batch b;
    uint64_t n = 0;
    raw = 0;
    while (it.next(&b)) {
      std::string_view recs;
      Error err;
      batch_records(b, 1 << 24, &scratch, &recs, &err);
      raw += recs.size();
      RecordIterator ri(recs, b.header.records_count);
      Record r;
      while (ri.next(&r)) ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  st.SetBytesProcessed(st.iterations() * raw);
  st.SetLabel(compression_name(static_cast<int>(st.range(0))));
}
BENCHMARK(BM_DecompressAndIterate)->DenseRange(0, 4);

}  // namespace
}  // namespace evmesh::kafka

BENCHMARK_MAIN();
