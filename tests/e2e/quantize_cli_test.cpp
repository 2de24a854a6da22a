// `pocketlm quantize` as a user runs it: dry runs write nothing; every bad input is a clear error with no
// output file (unknown type, bad rules, another model's imatrix, a missing directory, a full disk); a file it
// writes loads in llama.cpp and continues greedily as pocketlm does on the same file; llama-imatrix's output
// steers it; its wall time beside llama-quantize's.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "e2e/cli_runner.h"
#include "e2e/peer_client.h"
#include "e2e/peer_compare.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "quant/imatrix.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

class QuantizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing (shared/ data folder)";
    dir_ = fs::temp_directory_path() / ("plm_qcli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  std::string in() const { return test::stories_path().string(); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write_file(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return path(name);
  }
  // Everything in dir_ but the inputs the test wrote itself.
  std::vector<std::string> outputs() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string n = e.path().filename().string();
      if (n.find(".json") == std::string::npos && n.find("imatrix") == std::string::npos) names.push_back(n);
    }
    return names;
  }
  void expect_error(const std::vector<std::string>& args, const std::string& message) {
    SCOPED_TRACE(message);
    const auto r = test::run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_TRUE(outputs().empty()) << "left behind: " << outputs().front();
  }
  fs::path dir_;
};

// A shell command's exit status (its output goes to `log`).
int sh(const std::string& cmd, const std::string& log) {
  const int st = std::system((cmd + " > " + log + " 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST_F(QuantizeCli, DryRunPrintsThePlanAndWritesNothing) {
  auto r = test::run_cli({"quantize", in(), path("out.gguf"), "Q4_K_M", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("blk.0.ffn_down.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FALLBACK: row width 172 is not a multiple of 256 (q4_K's block) nor of 32: f16 instead"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("total: 48 tensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bits/weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dry run: nothing written"), std::string::npos) << r.out;
  EXPECT_TRUE(outputs().empty());
  r = test::run_cli({"quantize", in(), "q8_0", "--dry-run", "--hot-fp16"});  // OUT may be left out
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("output.weight"), std::string::npos);
  EXPECT_NE(r.out.find("--output-tensor-type"), std::string::npos) << r.out;
}

// SmolLM2's 576-wide rows: the Q4_K_M plan falls back to q5_0 there and says so; its Q4_1 base is flagged.
TEST_F(QuantizeCli, DryRunOnSmolLM2ShowsTheWidthFallbacksAndTheRequantization) {
  if (!fs::exists(test::smollm2_path())) GTEST_SKIP() << test::smollm2_path() << " missing (scripts/fetch-models.sh)";
  const auto r = test::run_cli({"quantize", test::smollm2_path().string(), "Q4_K_M", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("FALLBACK: row width 576 is not a multiple of 256 (q4_K's block): q5_0 instead"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("requantized from q4_1"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("are already q4_1: they are dequantized and quantized again"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("(general.file_type 15)"), std::string::npos) << r.out;
}

TEST_F(QuantizeCli, BadInputsAreClearErrorsWithNoOutputFile) {
  const std::string out = path("out.gguf");
  expect_error({"quantize", in(), out, "q4_k_x"}, "unknown quantization type or recipe 'q4_k_x' (recipes: ");
  expect_error({"quantize", in(), out, "q4_0", "--rules",
                write_file("bad_regex.json", R"([{"pattern": "blk\\.[0-9", "type": "q8_0"}])")},
               "bad_regex.json: rule 1: bad regular expression 'blk\\.[0-9'");
  expect_error(
      {"quantize", in(), out, "q4_0", "--rules",
       write_file("bad_type.json", R"([{"pattern": "attn", "type": "q8_0"}, {"pattern": "ffn", "type": "q3_0"}])")},
      "bad_type.json: rule 2: unknown tensor type 'q3_0'");
  expect_error({"quantize", in(), out, "q4_0", "--output-tensor-type", "q4_K"},
               "--output-tensor-type: tensor 'output.weight' [64, 512] has rows of 64 values, not a multiple of q4_K's "
               "block of 256");
  // An imatrix of another model (SmolLM2's widths).
  Imatrix im;
  ImatrixEntry e;
  e.name = "blk.0.ffn_down.weight";
  e.n_cols = 1536;
  e.sums.assign(1536, 2.0f);
  e.counts = {4.0f};
  im.entries.push_back(e);
  const std::string im_path = path("other.imatrix.gguf");
  ASSERT_TRUE(write_imatrix_gguf(im, im_path).ok());
  expect_error({"quantize", in(), out, "q4_0", "--imatrix", im_path},
               "imatrix entry 'blk.0.ffn_down.weight' has 1536 columns");
  expect_error({"quantize", in(), path("no/such/dir/out.gguf"), "q4_0"}, "does not exist");
  fs::create_directories(dir_ / "adir");
  const auto r = test::run_cli({"quantize", in(), path("adir"), "q4_0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is a directory"), std::string::npos) << r.err;
  fs::remove(dir_ / "adir");
}

// A full disk: a 64 KiB tmpfs in a private mount namespace (unprivileged user namespaces; skipped without).
// --search picks the encoders' scale search: a bad value is an error naming it, with no file; the exact sweep and
// the fast default both write a loadable file, and they choose different codes for some blocks (else the flag
// would not reach the encoders).
TEST_F(QuantizeCli, SearchFlagReachesTheEncoders) {
  expect_error({"quantize", in(), path("out.gguf"), "q4_0", "--search", "quick"},
               "--search: 'quick' is not fast, exact or nearest");
  const std::string fast = path("fast.gguf"), exact = path("exact.gguf");
  auto r = test::run_cli({"quantize", in(), fast, "q4_0", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_cli({"quantize", in(), exact, "q4_0", "-q", "--search", "exact"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto a = GgufFile::open(fast), b = GgufFile::open(exact);
  ASSERT_TRUE(a.ok() && b.ok());
  size_t differing = 0;
  for (const GgufTensor& t : a->tensors()) {
    const GgufTensor* u = b->tensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    ASSERT_EQ(t.type, u->type) << t.name;
    ASSERT_EQ(t.nbytes, u->nbytes) << t.name;
    differing += std::memcmp(t.data, u->data, t.nbytes) != 0 ? 1 : 0;
  }
  EXPECT_GT(differing, 0u);
}

TEST_F(QuantizeCli, FullDiskIsAClearErrorAndLeavesNothing) {
  const std::string mnt = path("mnt");
  fs::create_directories(mnt);
  if (sh("unshare -rm sh -c 'mount -t tmpfs -o size=64k tmpfs " + mnt + "'", path("probe.log")) != 0)
    GTEST_SKIP() << "cannot mount a tmpfs in a user namespace here (unshare -rm): " << slurp(path("probe.log"));
  const std::string script = "mount -t tmpfs -o size=64k tmpfs " + mnt + " && " + test::cli_path().string() +
                             " quantize " + in() + " " + mnt + "/out.gguf q8_0 -q; rc=$?; echo \"files: $(ls -A " +
                             mnt + ")\"; exit $rc";
  const std::string log = path("full.log");
  const int rc = sh("unshare -rm sh -c '" + script + "'", log);
  const std::string text = slurp(log);
  EXPECT_EQ(rc, 1) << text;
  EXPECT_NE(text.find("No space left on device"), std::string::npos) << text;
  EXPECT_NE(text.find("was not written"), std::string::npos) << text;
  EXPECT_NE(text.find("files: \n"), std::string::npos) << "something was left on the full disk: " << text;
}

// Ctrl-C mid-way (SmolLM2: tens of seconds of work): exit status 130, "interrupted", no OUT, no temporary file.
TEST_F(QuantizeCli, CtrlCLeavesNoFile) {
  if (!fs::exists(test::smollm2_path())) GTEST_SKIP() << test::smollm2_path() << " missing (scripts/fetch-models.sh)";
  const std::string out = path("smol.gguf"), err = path("smol.err");
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!std::freopen(err.c_str(), "w", stderr) || !std::freopen("/dev/null", "w", stdout)) _exit(127);
    std::string cli = test::cli_path().string(), model = test::smollm2_path().string();
    ::execl(cli.c_str(), cli.c_str(), "quantize", model.c_str(), out.c_str(), "Q4_K_M", "-t", "1",
            static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until it is quantizing (the progress line shows), then interrupt.
  for (int i = 0; i < 200 && slurp(err).find("tensors") == std::string::npos; ++i) ::usleep(50000);
  ::usleep(300000);
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 130) << slurp(err);
  EXPECT_NE(slurp(err).find("interrupted: " + out + " was not written"), std::string::npos) << slurp(err);
  fs::remove(err);
  EXPECT_TRUE(outputs().empty()) << "left behind: " << outputs().front();
}

std::vector<int32_t> pocketlm_greedy(const std::string& model, const std::string& prompt, int n) {
  auto m = Model::load(model);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message());
  if (!m.ok()) return {};
  auto s = Session::create(**m, SessionOptions{256, KvType::F16, 2});
  std::vector<int32_t> toks = (*m)->tokenizer().encode(prompt, true, false), out;
  auto logits = (*s)->eval(toks);
  for (int i = 0; i < n && logits.ok(); ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin());
    out.push_back(next);
    const int32_t one[1] = {next};
    logits = (*s)->eval(one);
  }
  return out;
}

TEST_F(QuantizeCli, Q4_0FileLoadsInLlamaCppWithTheSameGreedyContinuation) {
  POCKETLM_REQUIRE_PEER();
  const std::string out = path("q4_0.gguf");
  const auto r = test::run_cli({"quantize", in(), out, "q4_0", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote " + out + ": recipe Q4_0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rel.rmse"), std::string::npos) << r.out;
  for (const std::string prompt : {"Once upon a time", "The little dog was sad because"}) {
    SCOPED_TRACE(prompt);
    const auto peer = test::run_peer({"greedy", "-m", out, "-p", prompt, "-n", "16"});
    const auto theirs = test::json_ids(peer.at("ids"));
    const auto ours = pocketlm_greedy(out, prompt, 16);
    ASSERT_EQ(theirs.size(), 16u);
    EXPECT_EQ(ours, theirs) << "llama.cpp: " << peer.at("text").get<std::string>();
  }
}

TEST_F(QuantizeCli, LlamaImatrixOutputSteersTheQuantizer) {
  const fs::path imatrix_bin = test::peer_dir() / "build/bin/llama-imatrix";
  if (!fs::exists(imatrix_bin)) GTEST_SKIP() << "no llama-imatrix (scripts/build-peer.sh builds the peer)";
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers";
  std::string text = slurp((test::shared_dir() / "testdata/text/tinystories-val.dev.txt").string());
  text.resize(std::min<size_t>(text.size(), 20000));
  const std::string calib = write_file("calib.txt", text);
  const std::string im = path("stories.imatrix.gguf");
  ASSERT_EQ(sh(imatrix_bin.string() + " -m " + in() + " -f " + calib + " -c 128 --chunks 4 -t 1 --no-ppl -o " + im,
               path("imatrix.log")),
            0)
      << slurp(path("imatrix.log"));
  const std::string out = path("q4_0_im.gguf");
  const auto r = test::run_cli({"quantize", in(), out, "Q4_0", "--imatrix", im, "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(imatrix-weighted)"), std::string::npos) << r.out;
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->get_string("quantize.imatrix.file"), im);
  EXPECT_GT(*f->get_int("quantize.imatrix.entries_count"), 30);
  auto m = Model::load(out);
  ASSERT_TRUE(m.ok()) << m.error().message();
}

// Top-1 agreement with the F32 model (pocketlm computing both) over the first 250 tokens of a story text.
double top1_vs_base(const std::string& model) {
  auto a = Model::load(test::stories_path().string());
  auto b = Model::load(model);
  EXPECT_TRUE(a.ok() && b.ok()) << (b.ok() ? "" : b.error().message());
  if (!a.ok() || !b.ok()) return 0;
  std::string text = slurp((test::shared_dir() / "testdata/text/tinystories-val.dev.txt").string());
  text.resize(std::min<size_t>(text.size(), 1500));
  std::vector<int32_t> toks = (*a)->tokenizer().encode(text, true, false);
  if (toks.size() > 250) toks.resize(250);
  auto sa = Session::create(**a, SessionOptions{256, KvType::F32, 2});
  auto sb = Session::create(**b, SessionOptions{256, KvType::F32, 2});
  auto la = (*sa)->eval(toks, true);
  auto lb = (*sb)->eval(toks, true);
  if (!la.ok() || !lb.ok()) return 0;
  const size_t nv = static_cast<size_t>((*a)->tokenizer().n_vocab());
  size_t agree = 0;
  for (size_t i = 0; i < toks.size(); ++i) {
    auto ra = la->subspan(i * nv, nv), rb = lb->subspan(i * nv, nv);
    agree +=
        (std::max_element(ra.begin(), ra.end()) - ra.begin()) == (std::max_element(rb.begin(), rb.end()) - rb.begin());
  }
  return static_cast<double>(agree) / static_cast<double>(toks.size());
}

// The same recipes through llama-quantize: the same type for every tensor, and our files agree with the F32
// model at least as often (a small tolerance: 250 positions).
TEST_F(QuantizeCli, SameRecipesAsLlamaQuantizeAndAtLeastItsAgreement) {
  const fs::path lq = test::peer_dir() / "build/bin/llama-quantize";
  if (!fs::exists(lq)) GTEST_SKIP() << "no llama-quantize (scripts/build-peer.sh builds the peer)";
  for (const std::string recipe : {"Q4_0", "Q4_K_M", "Q3_K_M", "Q2_K"}) {
    SCOPED_TRACE(recipe);
    const std::string ours = path("ours.gguf"), theirs = path("theirs.gguf");
    const auto r = test::run_cli({"quantize", in(), ours, recipe, "-q", "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(sh(lq.string() + " " + in() + " " + theirs + " " + recipe + " 2", path("lq.log")), 0)
        << slurp(path("lq.log"));
    auto a = GgufFile::open(ours);
    auto b = GgufFile::open(theirs);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a->get_int("general.file_type"), *b->get_int("general.file_type"));
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (const GgufTensor& t : a->tensors()) {  // llama-quantize orders tensors its own way: match by name
      const GgufTensor* u = b->tensor(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      EXPECT_EQ(t.type, u->type) << t.name;
    }
    const double ta = top1_vs_base(ours), tb = top1_vs_base(theirs);
    std::printf(
        "[quantize-vs-llama] stories260K %s: top-1 agreement with F32: pocketlm %.1f %%, llama-quantize %.1f %%\n",
        recipe.c_str(), 100 * ta, 100 * tb);
    std::fflush(stdout);  // before run_cli forks again
    EXPECT_GE(ta, tb - 0.02);
  }
}

// `--search nearest` is llama-quantize's round-to-nearest: without an imatrix, every tensor of the 32-value types
// byte for byte what llama-quantize writes (the k-quants keep a search of their own: only the types are compared
// there). With an imatrix it is an error: the importance only steers a search.
TEST_F(QuantizeCli, NearestSearchIsLlamaQuantizesRoundingByteForByte) {
  const fs::path lq = test::peer_dir() / "build/bin/llama-quantize";
  if (!fs::exists(lq)) GTEST_SKIP() << "no llama-quantize (scripts/build-peer.sh builds the peer)";
  for (const std::string type : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"}) {
    SCOPED_TRACE(type);
    const std::string ours = path("ours.gguf"), theirs = path("theirs.gguf");
    const auto r = test::run_cli({"quantize", in(), ours, type, "--pure", "--search", "nearest", "-q", "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(sh(lq.string() + " --pure " + in() + " " + theirs + " " + type + " 2", path("lq.log")), 0)
        << slurp(path("lq.log"));
    auto a = GgufFile::open(ours);
    auto b = GgufFile::open(theirs);
    ASSERT_TRUE(a.ok() && b.ok());
    int quantized = 0;
    for (const GgufTensor& t : a->tensors()) {
      const GgufTensor* u = b->tensor(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      ASSERT_EQ(t.type, u->type) << t.name;
      ASSERT_EQ(t.nbytes, u->nbytes) << t.name;
      EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0) << t.name << " differs";
      quantized += t.type != GgmlType::F32;
    }
    EXPECT_GE(quantized, 7) << "too few quantized tensors to compare";
    // The default search differs from the plain rounding (it fits each block's scale).
    ASSERT_EQ(test::run_cli({"quantize", in(), path("fast.gguf"), type, "--pure", "-q", "-t", "2"}).exit_code, 0);
    auto c = GgufFile::open(path("fast.gguf"));
    ASSERT_TRUE(c.ok());
    const GgufTensor* q = c->tensor("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    if (type != "Q8_0") {
      EXPECT_NE(std::memcmp(q->data, b->tensor(q->name)->data, q->nbytes), 0);
    }
    for (const std::string& f : {ours, theirs, path("fast.gguf"), path("lq.log")}) fs::remove(f);
  }
  const std::string calib = write_file("calib.json", "Once upon a time there was a little dog.");
  expect_error({"quantize", in(), path("x.gguf"), "Q4_0", "--search", "nearest", "--method", "awq", "--calib", calib},
               "--search nearest is llama-quantize's plain rounding");
  expect_error({"quantize", in(), path("x.gguf"), "Q4_0", "--search", "nearest", "--smooth", "0.5", "--calib", calib},
               "--search nearest is llama-quantize's plain rounding");
}

// Both directions of "any llama.cpp-compatible runtime": our Q4_K_M file run by llama.cpp, and llama-quantize's
// (llama.cpp's own quantize API) run by pocketlm: each engine on the same file gives the same greedy
// continuations and top-1 >= 99 % over 512 positions of wiki.test.raw (4 chunks at stories260K's -c 128).
TEST_F(QuantizeCli, QuantizedFilesRunAlikeInBothEngines) {
  POCKETLM_REQUIRE_PEER();
  const fs::path lq = test::peer_dir() / "build/bin/llama-quantize";
  if (!fs::exists(lq)) GTEST_SKIP() << "no llama-quantize (scripts/build-peer.sh builds the peer)";
  const std::string ours = path("ours-q4km.gguf"), theirs = path("llama-q4km.gguf");
  const auto r = test::run_cli({"quantize", in(), ours, "Q4_K_M", "-q", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(sh(lq.string() + " " + in() + " " + theirs + " Q4_K_M 2", path("lq.log")), 0) << slurp(path("lq.log"));
  for (const std::string& file : {ours, theirs}) {
    SCOPED_TRACE(file);
    for (const std::string prompt : {"Once upon a time", "The little dog was sad because"}) {
      const auto peer = test::run_peer({"greedy", "-m", file, "-p", prompt, "-n", "16"});
      EXPECT_EQ(pocketlm_greedy(file, prompt, 16), test::json_ids(peer.at("ids"))) << prompt;
    }
    auto m = Model::load(file);
    ASSERT_TRUE(m.ok()) << m.error().message();
    const Model& model = **m;
    const test::TempFile logits("");
    const auto peer = test::run_peer({"top1", "-m", file, "-f", test::wiki_path().string(), "--positions", "512", "-c",
                                      "128", "-t", "2", "--logits-out", logits.str()});
    const test::Top1Comparison cmp = test::compare_top1(peer, logits.path(), [&model] {
      auto s = Session::create(model, SessionOptions{.n_ctx = 128, .kv_type = KvType::F16, .n_threads = 2});
      if (!s.ok()) throw std::runtime_error("Session::create: " + s.error().message());
      return std::move(s).value();
    });
    ASSERT_EQ(cmp.positions, 512u);
    const double pct = 100.0 * static_cast<double>(cmp.agree) / static_cast<double>(cmp.positions);
    std::printf("[quantize-vs-llama] %s: top-1 agreement pocketlm vs llama.cpp %.2f %%, mean KL %.2e\n",
                fs::path(file).filename().c_str(), pct, cmp.kl_sum / static_cast<double>(cmp.positions));
    std::fflush(stdout);
    EXPECT_GE(pct, 99.0);
  }
}

TEST_F(QuantizeCli, WallTimeBesideLlamaQuantize) {
  const fs::path lq = test::peer_dir() / "build/bin/llama-quantize";
  if (!fs::exists(lq)) GTEST_SKIP() << "no llama-quantize (scripts/build-peer.sh builds the peer)";
  auto best = [](const std::function<void()>& fn) {
    double t = 1e9;
    for (int i = 0; i < 3; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      t = std::min(t, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return t;
  };
  const double ours = best([&] {
    const auto r = test::run_cli({"quantize", in(), path("ours.gguf"), "q4_0", "-t", "1", "-q"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  });
  const double theirs = best([&] {
    EXPECT_EQ(sh(lq.string() + " " + in() + " " + path("theirs.gguf") + " q4_0 1", path("lq.log")), 0)
        << slurp(path("lq.log"));
  });
  std::printf(
      "[quantize-time] stories260K q4_0, 1 thread, best of 3 (process wall time): pocketlm %.3f s, "
      "llama-quantize %.3f s\n",
      ours, theirs);
  std::fflush(stdout);
}

}  // namespace
}  // namespace pocketlm
