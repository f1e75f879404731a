// Replays every committed corpus file (test/corpus/amqp_parser/*) through the fuzz body.
#include "filters/amqp/test/fuzz_parser.h"
#include "filters/common/test/corpus.h"

TEST(AmqpCorpus, ReplaysEveryFile) {
  evmesh::testing::replay_corpus("filters/amqp/test/corpus/amqp_parser", 20, evmesh::amqp::fuzz::fuzz_one);
}
