// Replays every committed corpus file (test/corpus/nats_parser/*) through the fuzz body.
#include "filters/common/test/corpus.h"
#include "filters/nats/test/fuzz_parser.h"

TEST(NatsCorpus, ReplaysEveryFile) {
  evmesh::testing::replay_corpus("filters/nats/test/corpus/nats_parser", 20, evmesh::nats::fuzz::fuzz_one);
}
