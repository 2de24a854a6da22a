#pragma once
// Making the draft source a generation asks for (llama.cpp's flags in brackets): a draft model file
// [--draft FILE], the target requantized in memory [--draft-self TYPE, --draft-layers N], or prompt lookup
// [--lookup]. Every check happens here, at load, with an error naming the file and the problem: a
// vocabulary that does not match the target's, a draft no smaller than the target, a KV budget that cannot
// hold the target's and the draft's caches.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "formats/ggml_type.h"
#include "model/model.h"
#include "runtime/session.h"
#include "runtime/speculative/draft_source.h"

namespace pocketlm {

struct DraftConfig {
  std::string model_path;             // a draft model file
  std::optional<GgmlType> self_type;  // a self-draft of this type
  int64_t self_layers = 0;            // the self-draft's first N layers (0: all)
  bool lookup = false;                // n-gram lookup in the sequence
  int lookup_ngram_min = 1, lookup_ngram_max = 4;
  bool enabled() const { return !model_path.empty() || self_type.has_value() || lookup; }
};

// Checks the drafting parameters (max >= 1, 0 <= min <= max, p_min in [0, 1]).
Status check_draft_params(const DraftParams& p);

// The source `config` asks for (null when it asks for none). `target_opts` are the options the target's
// session will be created with: a model draft runs on the target's thread pool and, when its KV blocks have
// the target's size (a self-draft always does), in the target's KV pool, so both are set in `target_opts`.
// A KV budget there covers the target and the draft together.
Expected<std::unique_ptr<DraftSource>> make_draft_source(const Model& target, const DraftConfig& config,
                                                         SessionOptions& target_opts);

}  // namespace pocketlm
