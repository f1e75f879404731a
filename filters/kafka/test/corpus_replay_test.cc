// Replays every committed corpus file (test/corpus/kafka_codec/*) through the fuzz body.
#include "filters/common/test/corpus.h"
#include "filters/kafka/test/fuzz_codec.h"

TEST(KafkaCorpus, ReplaysEveryFile) {
  evmesh::testing::replay_corpus("filters/kafka/test/corpus/kafka_codec", 40, evmesh::kafka::fuzz::fuzz_one);
}
