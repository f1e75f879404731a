// Replays every committed filter-fuzz corpus file (test/corpus/amqp_filter/*)
// through the filter fuzz body against the fake Envoy.
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "filters/amqp/test/fuzz_filter.h"

namespace evmesh {
const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {{"amqp", &amqp::make_amqp_config}};
  return kinds;
}
}  // namespace evmesh

namespace {

TEST(AmqpFilterCorpus, ReplaysEveryFile) {
  const std::string dir = "filters/amqp/test/corpus/amqp_filter";
  std::vector<std::string> files;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') files.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
  }
  ASSERT_GE(files.size(), 9u) << "corpus missing under " << dir;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    evmesh::amqp::fuzz::fuzz_filter_one(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
}

}  // namespace
