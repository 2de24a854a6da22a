// imatrix files: llama-imatrix's GGUF and legacy .dat outputs read back with equal sums; our writes round-trip
// and are readable by llama-imatrix; merging adds; statistics; validation against a model; bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "quant/imatrix.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() /
              ("plm_imatrix_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

ImatrixEntry entry(std::string name, std::vector<float> sums, std::vector<float> counts) {
  ImatrixEntry e;
  e.name = std::move(name);
  e.n_mat = static_cast<int64_t>(counts.size());
  e.n_cols = static_cast<int64_t>(sums.size()) / e.n_mat;
  e.sums = std::move(sums);
  e.counts = std::move(counts);
  return e;
}

Imatrix sample() {
  Imatrix im;
  im.entries.push_back(entry("blk.0.ffn_up.weight", {0.0f, 1.0f, 2.0f, 3.0f}, {1.0f}));
  im.entries.push_back(entry("blk.1.ffn_down_exps.weight", {1, 2, 3, 4, 5, 6}, {3.0f, 0.0f}));
  im.entries.push_back(entry("blk.1.ffn_up.weight", {0.0f, 2.0f, 4.0f, 6.0f}, {2.0f}));  // sorted by name
  im.datasets = {"calib.txt"};
  im.chunk_count = 3;
  im.chunk_size = 512;
  return im;
}

void expect_same(const Imatrix& a, const Imatrix& b, double rel) {
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const auto& x = a.entries[i];
    const auto& y = b.entries[i];
    ASSERT_EQ(x.name, y.name);
    ASSERT_EQ(x.n_cols, y.n_cols) << x.name;
    ASSERT_EQ(x.n_mat, y.n_mat) << x.name;
    for (size_t j = 0; j < x.sums.size(); ++j)
      ASSERT_NEAR(x.sums[j], y.sums[j], rel * std::fabs(x.sums[j]) + 1e-30) << x.name << " column " << j;
    for (size_t j = 0; j < x.counts.size(); ++j) ASSERT_NEAR(x.counts[j], y.counts[j], rel * x.counts[j]) << x.name;
  }
}

TEST(Imatrix, GgufRoundTripIsExact) {
  TempDir dir;
  const Imatrix im = sample();
  ASSERT_TRUE(write_imatrix_gguf(im, (dir / "im.gguf").string()).ok());
  auto back = read_imatrix((dir / "im.gguf").string());
  ASSERT_TRUE(back.ok()) << back.error().message();
  expect_same(im, *back, 0.0);
  EXPECT_EQ(back->datasets, im.datasets);
  EXPECT_EQ(back->chunk_count, 3);
  EXPECT_EQ(back->chunk_size, 512);
  EXPECT_FALSE(back->from_legacy);
  // The layout llama.cpp expects: <w>.in_sum2 [n_cols, n_mat], <w>.counts [1, n_mat], general.type imatrix.
  auto g = GgufFile::open((dir / "im.gguf").string());
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g->get_string("general.type"), "imatrix");
  const GgufTensor* t = g->tensor("blk.1.ffn_down_exps.weight.in_sum2");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne[0], 3);
  EXPECT_EQ(t->ne[1], 2);
  EXPECT_EQ(g->tensor("blk.1.ffn_down_exps.weight.counts")->ne[0], 1);
}

TEST(Imatrix, DatRoundTripKeepsTheMeans) {
  TempDir dir;
  Imatrix im = sample();
  im.entries.erase(im.entries.begin());  // .dat holds one count per entry: keep single-matrix entries only
  im.entries.erase(im.entries.begin());
  im.entries.push_back(entry("blk.0.attn_q.weight", {512.0f, 1024.0f, 0.0f}, {1024.0f}));
  ASSERT_TRUE(write_imatrix_dat(im, (dir / "im.dat").string()).ok());
  auto back = read_imatrix((dir / "im.dat").string(), 512);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_TRUE(back->from_legacy);
  ASSERT_EQ(back->entries.size(), 2u);
  // Counts become whole chunks (2 x 512): means survive exactly here.
  const auto imp = back->find("blk.0.attn_q.weight")->importance();
  EXPECT_FLOAT_EQ(imp[0], 0.5f);
  EXPECT_FLOAT_EQ(imp[1], 1.0f);
  EXPECT_FLOAT_EQ(imp[2], 0.0f);
  EXPECT_EQ(back->datasets, std::vector<std::string>{"calib.txt"});
  EXPECT_EQ(back->chunk_count, 3);
}

TEST(Imatrix, MergeAddsSumsAndCounts) {
  const Imatrix a = sample();
  Imatrix b;
  b.entries.push_back(entry("blk.0.ffn_up.weight", {1, 1, 1, 1}, {4.0f}));
  b.entries.push_back(entry("output.weight", {5, 5}, {1.0f}));
  b.datasets = {"more.txt"};
  b.chunk_count = 2;
  auto m = merge_imatrices({a, b}, {"a.gguf", "b.gguf"});
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->entries.size(), 4u);
  const ImatrixEntry* e = m->find("blk.0.ffn_up.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->sums, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(e->counts, (std::vector<float>{5}));
  EXPECT_NE(m->find("output.weight"), nullptr);
  EXPECT_EQ(m->chunk_count, 5);
  EXPECT_EQ(m->datasets, (std::vector<std::string>{"calib.txt", "more.txt"}));
  // Different widths for one name: an error naming the entry and both inputs.
  Imatrix c;
  c.entries.push_back(entry("blk.0.ffn_up.weight", {1, 1, 1}, {1.0f}));
  auto bad = merge_imatrices({a, c}, {"a.gguf", "c.gguf"});
  ASSERT_FALSE(bad.ok());
  const std::string& msg = bad.error().message();
  EXPECT_NE(msg.find("blk.0.ffn_up.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a.gguf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("c.gguf"), std::string::npos) << msg;
}

TEST(Imatrix, Statistics) {
  const Imatrix im = sample();
  const auto stats = imatrix_statistics(im);
  ASSERT_EQ(stats.size(), 3u);
  for (const auto& s : stats) {
    if (s.name == "blk.0.ffn_up.weight") {
      EXPECT_DOUBLE_EQ(s.sum, 6.0);
      EXPECT_DOUBLE_EQ(s.mean, 1.5);
      EXPECT_DOUBLE_EQ(s.max, 3.0);
      EXPECT_DOUBLE_EQ(s.min, 0.0);
      EXPECT_EQ(s.zero_columns, 1);
      EXPECT_DOUBLE_EQ(s.active, 0.75);
      EXPECT_NEAR(s.stddev, std::sqrt(1.25), 1e-12);
      EXPECT_FALSE(s.has_cossim);
    } else if (s.name == "blk.1.ffn_up.weight") {
      // Means 0, 1, 2, 3 again: identical direction to layer 0.
      ASSERT_TRUE(s.has_cossim);
      EXPECT_NEAR(s.cossim, 1.0, 1e-12);
    } else {
      EXPECT_EQ(s.n, 3);  // the second expert saw no tokens: left out
      EXPECT_DOUBLE_EQ(s.sum, 2.0);
    }
  }
  const std::string text = format_imatrix_statistics(im, stats);
  EXPECT_NE(text.find("blk.0.ffn_up.weight"), std::string::npos) << text;
  EXPECT_NE(text.find("calib.txt"), std::string::npos) << text;
}

TEST(Imatrix, BadInputIsAClearError) {
  TempDir dir;
  ASSERT_TRUE(write_imatrix_dat(sample(), (dir / "im.dat").string()).ok());
  const std::vector<uint8_t> dat = read_bytes(dir / "im.dat");
  // Every truncation is an error (never a crash) naming the byte offset; the full file parses.
  for (size_t n = 0; n < dat.size(); ++n) {
    auto r = parse_imatrix({dat.data(), n}, "cut.dat");
    if (r.ok()) {
      // A cut exactly before the optional trailer is a valid file.
      continue;
    }
    EXPECT_NE(r.error().message().find("cut.dat"), std::string::npos) << r.error().message();
  }
  EXPECT_TRUE(parse_imatrix(dat, "im.dat").ok());
  std::vector<uint8_t> huge = dat;
  huge[0] = 0xFF;
  huge[1] = 0xFF;
  huge[2] = 0xFF;
  huge[3] = 0x7F;
  auto r = parse_imatrix(huge, "huge.dat");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("entry count at byte 4"), std::string::npos) << r.error().message();
  // A NaN sum.
  std::vector<uint8_t> nan = dat;
  const float qnan = std::nanf("");
  std::memcpy(&nan[4 + 4 + 19 + 8], &qnan, 4);  // first value of the first entry ("blk.0.ffn_up.weight")
  r = parse_imatrix(nan, "nan.dat");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("blk.0.ffn_up.weight values[0]"), std::string::npos) << r.error().message();
  // A model file is not an imatrix.
  GgufWriter w;
  w.set("general.type", GgufValue::of_string("model"));
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok());
  r = parse_imatrix(*bytes, "model.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not 'imatrix'"), std::string::npos) << r.error().message();
  // Writing into a missing directory fails and leaves nothing.
  EXPECT_FALSE(write_imatrix_gguf(sample(), (dir / "no/such/dir/im.gguf").string()).ok());
}

fs::path llama_imatrix() { return test::peer_dir() / "build/bin/llama-imatrix"; }

struct PeerFiles {
  fs::path gguf, dat;
};

// Runs llama-imatrix on stories260K twice (GGUF and legacy .dat output) over the start of wiki.test.raw.
bool run_llama_imatrix(const TempDir& dir, PeerFiles& out) {
  const fs::path text = dir / "calib.txt";
  {
    std::ifstream in(test::shared_dir() / "testdata/text/wiki.test.raw", std::ios::binary);
    std::string s(20000, '\0');
    in.read(s.data(), static_cast<std::streamsize>(s.size()));
    s.resize(static_cast<size_t>(in.gcount()));
    std::ofstream(text, std::ios::binary) << s;
  }
  out.gguf = dir / "peer.gguf";
  out.dat = dir / "peer.dat";
  const std::string base = llama_imatrix().string() + " -m " + test::stories_path().string() + " -f " + text.string() +
                           " -c 128 --chunks 4 -t 1 --no-ppl";
  return std::system((base + " -o " + out.gguf.string() + " > " + (dir / "log1").string() + " 2>&1").c_str()) == 0 &&
         std::system((base + " --output-format dat -o " + out.dat.string() + " > " + (dir / "log2").string() + " 2>&1")
                         .c_str()) == 0;
}

TEST(ImatrixPeer, LlamaImatrixFilesReadBackWithEqualSums) {
  if (!fs::exists(llama_imatrix())) GTEST_SKIP() << "no llama-imatrix (scripts/build-peer.sh builds the peer)";
  if (!fs::exists(test::stories_path())) GTEST_SKIP() << "no stories260K.gguf in shared/models";
  TempDir dir;
  PeerFiles files;
  ASSERT_TRUE(run_llama_imatrix(dir, files)) << "llama-imatrix failed; see its log";
  auto g = read_imatrix(files.gguf.string());
  ASSERT_TRUE(g.ok()) << g.error().message();
  auto d = read_imatrix(files.dat.string(), /*legacy_chunk_size=*/128);  // the -c it ran with
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(g->chunk_count, 4);
  EXPECT_EQ(g->chunk_size, 128);
  ASSERT_EQ(g->datasets.size(), 1u);
  EXPECT_NE(g->datasets[0].find("calib.txt"), std::string::npos);
  ASSERT_GT(g->entries.size(), 20u);  // every matmul weight of the 5 layers
  for (const auto& e : g->entries) {
    EXPECT_EQ(e.counts, std::vector<float>{512.0f}) << e.name;  // 4 chunks x 128 tokens
    double total = 0;
    for (float s : e.sums) total += s;
    EXPECT_GT(total, 0.0) << e.name;
  }
  // The legacy file holds the same sums (as means x calls), up to float rounding.
  expect_same(*g, *d, 1e-5);
  // Both match the model; ours written back is read by llama-imatrix itself.
  auto model = GgufFile::open(test::stories_path().string());
  ASSERT_TRUE(model.ok());
  EXPECT_TRUE(validate_imatrix(*g, *model).ok());
  ASSERT_TRUE(write_imatrix_gguf(*g, (dir / "ours.gguf").string()).ok());
  const std::string stats_cmd = llama_imatrix().string() + " -m " + test::stories_path().string() + " --in-file " +
                                (dir / "ours.gguf").string() + " --show-statistics > " + (dir / "stats.txt").string() +
                                " 2>&1";
  // Its statistics table (layer \t tensor \t sum(act^2) \t ...) agrees with ours, tensor by tensor.
  // llama-imatrix logs through an asynchronous logger that loses the tail of its output at exit (often the
  // whole table), so the exit status is checked every time and the rows are compared as they appear, over up
  // to 24 runs.
  const auto ours = imatrix_statistics(*g);
  int compared = 0;
  for (int attempt = 0; attempt < 24 && compared == 0; ++attempt) {
    ASSERT_EQ(std::system(stats_cmd.c_str()), 0) << "llama-imatrix could not read our file: " << stats_cmd;
    const std::vector<uint8_t> stats_raw = read_bytes(dir / "stats.txt");
    std::istringstream lines(std::string(stats_raw.begin(), stats_raw.end()));
    for (std::string line; std::getline(lines, line);) {
      std::vector<std::string> f;
      std::istringstream fields(line);
      for (std::string field; std::getline(fields, field, '\t');) {
        const auto b = field.find_first_not_of(' '), e = field.find_last_not_of(' ');
        f.push_back(b == std::string::npos ? "" : field.substr(b, e - b + 1));
      }
      if (f.size() < 12 || f[0].empty()) continue;  // a whole row has 12 columns
      const size_t sp = f[0].find_last_of(' ');
      const std::string layer = sp == std::string::npos ? f[0] : f[0].substr(sp + 1);
      if (layer.empty() || layer.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string name = "blk." + layer + "." + f[1] + ".weight";
      for (const auto& st : ours)
        if (st.name == name) {
          EXPECT_NEAR(st.sum, std::stod(f[2]), 0.006 + 1e-4 * st.sum) << name;
          ++compared;
        }
    }
  }
  EXPECT_GT(compared, 0) << "no row of llama-imatrix's statistics table in 24 runs";
  std::printf("[imatrix] %d rows of llama-imatrix's --show-statistics compared with ours\n", compared);
  // Merging the two files doubles every sum.
  auto m = merge_imatrices({*g, *g}, {"a", "b"});
  ASSERT_TRUE(m.ok());
  for (size_t i = 0; i < m->entries.size(); ++i)
    for (size_t j = 0; j < m->entries[i].sums.size(); ++j) ASSERT_EQ(m->entries[i].sums[j], 2 * g->entries[i].sums[j]);
}

TEST(ImatrixPeer, ImatrixForAnotherModelNamesTheFirstMismatch) {
  if (!fs::exists(test::smollm2_path())) GTEST_SKIP() << "no SmolLM2 (scripts/fetch-models.sh)";
  Imatrix im;
  im.entries.push_back(entry("blk.0.attn_k.weight", std::vector<float>(64, 1.0f), {1.0f}));
  im.entries.push_back(entry("blk.0.attn_q.weight", std::vector<float>(64, 1.0f), {1.0f}));
  auto model = GgufFile::open(test::smollm2_path().string());
  ASSERT_TRUE(model.ok());
  Status s = validate_imatrix(im, *model);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("'blk.0.attn_k.weight' has 64 columns"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("[576, "), std::string::npos) << s.error().message();
  im.entries = {entry("blk.99.ffn_up.weight", std::vector<float>(576, 1.0f), {1.0f})};
  s = validate_imatrix(im, *model);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("'blk.99.ffn_up.weight' names no tensor"), std::string::npos)
      << s.error().message();
}

}  // namespace
}  // namespace pocketlm
