#include "model/model.h"

#include "kernels/dispatch.h"

namespace pocketlm {

Expected<std::unique_ptr<Model>> Model::load(const std::string& path) {
  PLM_TRY(GgufFile f, GgufFile::open(path));
  return load(std::move(f));
}

Expected<std::unique_ptr<Model>> Model::load(GgufFile f) {
  PLM_CHECK(kernels::isa_override_status());
  const std::string path = f.path();
  std::unique_ptr<Model> m(new Model(std::move(f)));
  PLM_TRY(m->config_, ModelConfig::from_gguf(m->gguf_));
  PLM_TRY(m->weights_, ModelWeights::bind(m->gguf_, m->config_));
  PLM_TRY(m->tokenizer_, Tokenizer::from_gguf(m->gguf_));
  if (m->tokenizer_->n_vocab() != m->config_.n_vocab)
    return Error(path + ": tokenizer has " + std::to_string(m->tokenizer_->n_vocab()) + " tokens but token_embd.weight has " +
                 std::to_string(m->config_.n_vocab) + " rows");
  return m;
}

}  // namespace pocketlm
