// pocketlm tokenize: text to token ids, as llama-tokenize does.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "common.h"
#include "gguf/reader.h"
#include "tokenizer/tokenizer.h"

namespace pocketlm::cli {
namespace {

struct TokenizeFlags {
  std::string model, prompt, file;
  bool ids = false, no_bos = false, no_parse_special = false;
};

int tokenize(const TokenizeFlags& f) {
  std::string text = f.prompt;
  if (!f.file.empty() && !read_text_file(f.file, text)) return 1;
  // Only the tokenizer is needed: read the GGUF, not the weights.
  auto gguf = GgufFile::open(f.model);
  if (!gguf) {
    print_error(gguf.error());
    return 1;
  }
  auto tok = Tokenizer::from_gguf(*gguf);
  if (!tok) {
    print_error(tok.error());
    return 1;
  }
  const std::vector<int32_t> ids = (*tok)->encode(text, !f.no_bos, !f.no_parse_special);
  if (f.ids) {
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
  } else {
    for (int32_t id : ids) std::printf("%d\t%s\n", id, (*tok)->token_to_piece(id, true).c_str());
  }
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& root) {
  auto f = std::make_shared<TokenizeFlags>();
  CLI::App* app = root.add_subcommand("tokenize", "print the token ids of a text");
  app->add_option("-m,--model", f->model, "GGUF model (or vocab-only) file")->required()->check(CLI::ExistingFile);
  auto* p = app->add_option("-p,--prompt", f->prompt, "text to tokenize");
  auto* file = app->add_option("-f,--file", f->file, "read the text from a file")->check(CLI::ExistingFile);
  p->excludes(file);
  app->add_flag("--ids", f->ids, "print one line of space-separated ids (default: one 'id<TAB>piece' per line)");
  app->add_flag("--no-bos", f->no_bos, "do not add the BOS token");
  app->add_flag("--no-parse-special", f->no_parse_special, "treat special-token text as plain text");
  app->callback([f] {
    if (f->prompt.empty() && f->file.empty()) throw CLI::ValidationError("tokenize", "give -p TEXT or -f FILE");
    const int rc = tokenize(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
