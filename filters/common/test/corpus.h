// Replays a committed fuzz corpus through a fuzz body in the ordinary test
// run, so the fuzzer's findings (and crash reproducers) stay fixed.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace evmesh::testing {

// The files of `dir` (relative to the workspace root, as Bazel runs tests), sorted.
inline std::vector<std::string> corpus_files(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Feeds every file of `dir` to fuzz_one(const uint8_t*, size_t); at least `min_files` must exist.
template <class FuzzOne>
void replay_corpus(const std::string& dir, size_t min_files, FuzzOne&& fuzz_one) {
  const auto files = corpus_files(dir);
  ASSERT_GE(files.size(), min_files) << "corpus missing under " << dir;
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    const std::string data = read_file(f);
    fuzz_one(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
}

}  // namespace evmesh::testing
