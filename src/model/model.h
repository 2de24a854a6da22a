#pragma once
// A loaded model: its config, tokenizer and zero-copy weight views into the mapped GGUF.
#include <memory>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/config.h"
#include "model/weights.h"
#include "model/weights_repack.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pocketlm {

struct ModelLoadOptions {
  // Copy the decode matrices into the active kernel path's row-interleaved layout and release their mapped
  // pages (model/weights_repack.h). Default: on, unless the environment sets POCKETLM_REPACK=0.
  bool decode_layout = default_decode_layout();
  static bool default_decode_layout();
};

class Model {
 public:
  // Opens and validates: config from metadata, every tensor the arch needs present with the right shape
  // and a type pocketlm can compute with, and the tokenizer. Errors name the file and the tensor/key.
  static Expected<std::unique_ptr<Model>> load(const std::string& path, const ModelLoadOptions& options = {});
  // The same over a GGUF file already opened (e.g. mapped from a descriptor: MappedFile::open_fd).
  static Expected<std::unique_ptr<Model>> load(GgufFile file, const ModelLoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return gguf_; }
  // The tensors held in the decode layout (count 0 when none were repacked).
  const RepackedWeights& repacked() const { return repacked_; }

 private:
  Model(GgufFile f) : gguf_(std::move(f)) {}
  GgufFile gguf_;
  ModelConfig config_;
  ModelWeights weights_;
  RepackedWeights repacked_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace pocketlm
