// Replays every committed filter-fuzz corpus file (test/corpus/amqp_filter/*)
// through the filter fuzz body against the fake Envoy.
#include <vector>

#include "filters/amqp/test/fuzz_filter.h"
#include "filters/common/test/corpus.h"

namespace evmesh {
const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {{"amqp", &amqp::make_amqp_config}};
  return kinds;
}
}  // namespace evmesh

TEST(AmqpFilterCorpus, ReplaysEveryFile) {
  evmesh::testing::replay_corpus("filters/amqp/test/corpus/amqp_filter", 9, evmesh::amqp::fuzz::fuzz_filter_one);
}
