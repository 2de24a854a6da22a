#include "e2e/peak_rss.h"

#include <fstream>
#include <iterator>

#include "e2e/process_runner.h"
#include "model/model.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace pocketlm::test {

std::string prompt_of_tokens(const std::string& model_path, int64_t n_tokens) {
  std::ifstream in(shared_dir() / "testdata/text/wiki.test.raw", std::ios::binary);
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (text.empty()) return "";
  while (text.size() < static_cast<size_t>(8 * n_tokens)) text += text;
  auto model = Model::load(model_path);
  if (!model.ok()) return "";
  const Tokenizer& tok = (*model)->tokenizer();
  size_t lo = 0, hi = static_cast<size_t>(8 * n_tokens);
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    (static_cast<int64_t>(tok.encode(text.substr(0, mid), true, true).size()) <= n_tokens ? lo : hi) = mid;
  }
  return text.substr(0, lo);
}

uint64_t peak_rss_of(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/time", "-f", "maxrss_kib=%M"};
  argv.insert(argv.end(), args.begin(), args.end());
  const CliResult r = run_process(argv);
  const size_t at = r.err.rfind("maxrss_kib=");
  if (r.exit_code != 0 || at == std::string::npos) return 0;
  return std::stoull(r.err.substr(at + 11)) * 1024;
}

}  // namespace pocketlm::test
