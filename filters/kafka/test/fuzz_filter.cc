// libFuzzer target: the whole Kafka filter against the fake Envoy (make fuzz).
#include "filters/kafka/test/fuzz_filter.h"

namespace evmesh {
const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {{"kafka", &kafka::make_kafka_config}};
  return kinds;
}
}  // namespace evmesh

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  evmesh::kafka::fuzz::fuzz_filter_one(data, size);
  return 0;
}
