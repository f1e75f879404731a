// Replays every committed corpus file (test/corpus/kafka_codec/*) through the
// fuzz body, so the ordinary test run keeps the fuzzer's findings fixed.
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "filters/kafka/test/fuzz_codec.h"

namespace {

std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
  }
  return out;
}

TEST(KafkaCorpus, ReplaysEveryFile) {
  const std::string dir = "filters/kafka/test/corpus/kafka_codec";
  const auto files = list(dir);
  ASSERT_GE(files.size(), 40u) << "corpus missing under " << dir;
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    evmesh::kafka::fuzz::fuzz_one(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
}

}  // namespace
