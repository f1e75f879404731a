// Replays every committed filter-fuzz corpus file (test/corpus/kafka_filter/*)
// through the filter fuzz body against the fake Envoy.
#include <vector>

#include "filters/common/test/corpus.h"
#include "filters/kafka/test/fuzz_filter.h"

namespace evmesh {
const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {{"kafka", &kafka::make_kafka_config}};
  return kinds;
}
}  // namespace evmesh

TEST(KafkaFilterCorpus, ReplaysEveryFile) {
  evmesh::testing::replay_corpus("filters/kafka/test/corpus/kafka_filter", 9, evmesh::kafka::fuzz::fuzz_filter_one);
}
