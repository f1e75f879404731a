// libFuzzer target for the whole filter against the fake Envoy: make fuzz.
#include "filters/amqp/test/fuzz_filter.h"

namespace evmesh {
const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {{"amqp", &amqp::make_amqp_config}};
  return kinds;
}
}  // namespace evmesh

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  evmesh::amqp::fuzz::fuzz_filter_one(data, size);
  return 0;
}
