// libFuzzer target: make fuzz (clang -fsanitize=fuzzer,address,undefined).
#include "filters/kafka/test/fuzz_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  evmesh::kafka::fuzz::fuzz_one(data, size);
  return 0;
}
