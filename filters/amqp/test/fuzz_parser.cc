// libFuzzer target: make fuzz (clang -fsanitize=fuzzer,address,undefined).
#include "filters/amqp/test/fuzz_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  evmesh::amqp::fuzz::fuzz_one(data, size);
  return 0;
}
