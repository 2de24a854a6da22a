#include "model/model.h"

#include <cstdlib>

#include "kernels/dispatch.h"

namespace pocketlm {

bool ModelLoadOptions::default_decode_layout() {
  const char* v = std::getenv("POCKETLM_REPACK");
  return v == nullptr || std::string(v) != "0";
}

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelLoadOptions& options) {
  PLM_TRY(GgufFile f, GgufFile::open(path));
  return load(std::move(f), options);
}

Expected<std::unique_ptr<Model>> Model::load(GgufFile f, const ModelLoadOptions& options) {
  PLM_CHECK(kernels::isa_override_status());
  const std::string path = f.path();
  std::unique_ptr<Model> m(new Model(std::move(f)));
  PLM_TRY(m->config_, ModelConfig::from_gguf(m->gguf_));
  PLM_TRY(m->weights_, ModelWeights::bind(m->gguf_, m->config_));
  PLM_TRY(m->tokenizer_, Tokenizer::from_gguf(m->gguf_));
  if (m->tokenizer_->n_vocab() != m->config_.n_vocab)
    return Error(path + ": tokenizer has " + std::to_string(m->tokenizer_->n_vocab()) +
                 " tokens but token_embd.weight has " + std::to_string(m->config_.n_vocab) + " rows");
  if (options.decode_layout) m->repacked_.repack(m->gguf_, m->weights_);
  return m;
}

}  // namespace pocketlm
