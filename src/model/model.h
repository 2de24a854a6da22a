#pragma once
// A loaded model: its config, tokenizer and zero-copy weight views into the mapped GGUF.
#include <memory>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pocketlm {

class Model {
 public:
  // Opens and validates: config from metadata, every tensor the arch needs present with the right shape
  // and a type pocketlm can compute with, and the tokenizer. Errors name the file and the tensor/key.
  static Expected<std::unique_ptr<Model>> load(const std::string& path);
  // The same over a GGUF file already opened (e.g. mapped from a descriptor: MappedFile::open_fd).
  static Expected<std::unique_ptr<Model>> load(GgufFile file);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return gguf_; }

 private:
  Model(GgufFile f) : gguf_(std::move(f)) {}
  GgufFile gguf_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace pocketlm
