// Validates the llama.cpp peer harness itself (bench/peer) on the tiny stories260K model: its tokenizer and
// greedy decoding must reproduce the recorded llama.cpp reference, and its top1 chunking and logits dump
// must be self-consistent. If these fail, the peer comparisons in peer_vs_pocketlm_test.cpp mean nothing.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/peer_client.h"
#include "test_paths.h"

namespace pocketlm::test {
namespace {

struct ReferenceCase {
  std::string prompt;
  std::vector<int32_t> prompt_ids;  // BOS first
  int n_predict = 0;
  std::string continuation;
};

std::vector<ReferenceCase> load_reference() {
  const auto path = shared_dir() / "testdata" / "reference" / "stories260K-greedy.jsonl";
  std::ifstream in(path);
  std::vector<ReferenceCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    cases.push_back({j.at("prompt").get<std::string>(), json_ids(j.at("prompt_ids_with_bos")),
                     j.at("n_predict").get<int>(), j.at("greedy_continuation").get<std::string>()});
  }
  return cases;
}

class PeerStories : public ::testing::Test {
 protected:
  void SetUp() override {
    POCKETLM_REQUIRE_PEER();
    if (!std::filesystem::exists(stories_path())) {
      GTEST_SKIP() << stories_path() << " missing (it ships in the shared/ data folder)";
    }
  }
  std::string model() const { return stories_path().string(); }
};

TEST_F(PeerStories, GreedyMatchesReference) {
  const auto cases = load_reference();
  ASSERT_GE(cases.size(), 4u) << "no cases read from stories260K-greedy.jsonl";
  for (const auto& c : cases) {
    SCOPED_TRACE("prompt: " + c.prompt);
    ASSERT_EQ(c.n_predict, 48);
    const auto out = run_peer({"greedy", "-m", model(), "-p", c.prompt, "-n", std::to_string(c.n_predict)});
    EXPECT_EQ(json_ids(out.at("prompt_ids")), c.prompt_ids);
    EXPECT_EQ(out.at("text").get<std::string>(), c.continuation);
    EXPECT_EQ(out.at("ids").size(), static_cast<size_t>(c.n_predict));
  }
}

TEST_F(PeerStories, TokenizeMatchesReference) {
  for (const auto& c : load_reference()) {
    SCOPED_TRACE("prompt: " + c.prompt);
    EXPECT_EQ(json_ids(run_peer({"tokenize", "-m", model(), "-p", c.prompt}).at("ids")), c.prompt_ids);
    auto no_bos = c.prompt_ids;
    no_bos.erase(no_bos.begin());
    EXPECT_EQ(json_ids(run_peer({"tokenize", "-m", model(), "-p", c.prompt, "--no-bos"}).at("ids")), no_bos);
    // -f reads the same bytes as -p.
    const TempFile f(c.prompt);
    EXPECT_EQ(json_ids(run_peer({"tokenize", "-m", model(), "-f", f.str()}).at("ids")), c.prompt_ids);
  }
}

// top1 with -c 40 over 100 positions: chunks of 40, 40 and 20 rows, each later chunk BOS + the stream,
// every row's target the next stream token, and the logits dump agreeing with the reported argmaxes.
TEST_F(PeerStories, Top1ChunkingAndLogits) {
  const auto text_path = shared_dir() / "testdata" / "text" / "tinystories-val.dev.txt";
  ASSERT_TRUE(std::filesystem::exists(text_path)) << text_path;
  const TempFile logits_file("");
  const auto out = run_peer({"top1", "-m", model(), "-f", text_path.string(), "--positions", "100", "-c", "40",
                             "--logits-out", logits_file.str()});
  const auto stream = json_ids(run_peer({"tokenize", "-m", model(), "-f", text_path.string()}).at("ids"));
  const auto tokens = json_ids(out.at("tokens"));
  const auto targets = json_ids(out.at("targets"));
  const auto top1 = json_ids(out.at("top1"));
  const int n_vocab = out.at("n_vocab").get<int>();
  ASSERT_EQ(n_vocab, 512);
  EXPECT_EQ(out.at("n_ctx").get<int>(), 40);
  EXPECT_TRUE(out.at("bos_inserted").get<bool>());
  EXPECT_EQ(out.at("chunks"), nlohmann::json::array({40, 40, 20}));
  ASSERT_EQ(tokens.size(), 100u);
  ASSERT_EQ(targets.size(), 100u);
  ASSERT_EQ(top1.size(), 100u);
  ASSERT_GT(stream.size(), 100u);

  // Rebuild the expected layout from the plain tokenization.
  std::vector<int32_t> want_tokens(stream.begin(), stream.begin() + 40);  // BOS + 39 text tokens
  std::vector<int32_t> want_targets(stream.begin() + 1, stream.begin() + 41);
  size_t next = 40;
  for (const size_t take : {39u, 19u}) {
    want_tokens.push_back(stream[0]);  // BOS
    want_targets.push_back(stream[next]);
    for (size_t i = 0; i < take; ++i) {
      want_tokens.push_back(stream[next + i]);
      want_targets.push_back(stream[next + i + 1]);
    }
    next += take;
  }
  EXPECT_EQ(stream[0], 1);
  EXPECT_EQ(tokens, want_tokens);
  EXPECT_EQ(targets, want_targets);

  std::ifstream in(logits_file.path(), std::ios::binary);
  std::vector<float> logits(100 * static_cast<size_t>(n_vocab));
  in.read(reinterpret_cast<char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
  ASSERT_TRUE(in) << "logits file shorter than 100 x n_vocab floats";
  EXPECT_EQ(in.peek(), std::char_traits<char>::eof()) << "logits file longer than 100 x n_vocab floats";
  for (size_t r = 0; r < 100; ++r) {
    const float* row = logits.data() + r * static_cast<size_t>(n_vocab);
    int32_t best = 0;
    for (int32_t v = 1; v < n_vocab; ++v) {
      if (row[v] > row[best]) best = v;
    }
    EXPECT_EQ(best, top1[r]) << "row " << r;
  }
  // Each chunk starts afresh: the first rows of chunks 1 and 2 see only BOS, like row 0 of chunk 0.
  EXPECT_EQ(top1[40], top1[0]);
  EXPECT_EQ(top1[80], top1[0]);
  for (int32_t v = 0; v < n_vocab; ++v) {
    ASSERT_NEAR(logits[static_cast<size_t>(v)], logits[40 * static_cast<size_t>(n_vocab) + static_cast<size_t>(v)],
                1e-3f)
        << "vocab " << v;
  }
}

TEST_F(PeerStories, FailuresAreReported) {
  EXPECT_THROW(run_peer({"greedy", "-m", "/nonexistent.gguf", "-p", "x", "-n", "1"}), std::runtime_error);
  EXPECT_THROW(run_peer({"no-such-subcommand"}), std::runtime_error);
}

}  // namespace
}  // namespace pocketlm::test
