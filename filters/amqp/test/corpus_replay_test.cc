// Replays every committed corpus file (test/corpus/amqp_parser/*) through the
// fuzz body, so the ordinary test run keeps the fuzzer's findings fixed.
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "filters/amqp/test/fuzz_parser.h"

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

TEST(AmqpCorpus, ReplaysEveryFile) {
  const std::string dir = "filters/amqp/test/corpus/amqp_parser";
  const auto files = list(dir);
  ASSERT_GE(files.size(), 20u) << "corpus missing under " << dir;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    evmesh::amqp::fuzz::fuzz_one(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
}

}  // namespace
