#pragma once
// `pocketlm quantize --method`: which quantization method turns the float weights into blocks, and what it
// needs from calibration.
//   rtn       the encoders' own search, no activations (round-to-nearest on the best-fitting scales)
//   imatrix   the same search weighted by mean x^2 per input column (an importance matrix from --calib)
//   awq       AWQ channel scales (awq.h) folded into the norms, then the importance-weighted search
//   gptq      GPTQ (gptq.h) on each format's grid, with the scales from the importance-weighted encoder
//   awq+gptq  AWQ's scales, then GPTQ on the rescaled weights
// Each may add --smooth ALPHA (SmoothQuant's migration, folded the same way, before AWQ's search).
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/imatrix.h"
#include "quant/methods/awq.h"
#include "quant/methods/calib_stats.h"
#include "quant/methods/weight_transform.h"
#include "quant/quantize_model.h"
#include "util/error.h"

namespace pocketlm {

class GgufFile;
class Session;
class ThreadPool;

enum class QuantMethod { Rtn, Imatrix, Awq, Gptq, AwqGptq };
Expected<QuantMethod> parse_quant_method(std::string_view name);
std::string_view quant_method_name(QuantMethod m);
bool method_uses_awq(QuantMethod m);
bool method_uses_gptq(QuantMethod m);
// Whether the method needs calibration statistics (every method but rtn; rtn too with --smooth).
bool method_needs_calibration(QuantMethod m, bool smooth);
// Whether the statistics need the Gram matrices (AWQ's search and GPTQ; not imatrix or smoothing alone).
bool method_needs_gram(QuantMethod m);

// The calibration statistics for `model` (whose file is `in`) over `sequences`: read from `cache_path` when it
// exists (and checked to be for this model and data: check_calib_stats), else collected by running `session`
// and written there (atomically; the directory is created). `from_cache` says which. A sequence list with no
// token is an error.
struct CalibrationRequest {
  std::span<const std::vector<int32_t>> sequences;
  std::string data_name;   // "wiki.train.raw: 8 chunks of 512 tokens"
  std::string cache_path;  // "" : default_calib_cache_path
  bool gram = true;
  int64_t n_batch = 512;
  bool progress = true;
};
Expected<CalibStats> calibration_stats(const GgufFile& in, Session& session, const CalibrationRequest& r,
                                       ThreadPool& pool, bool* from_cache = nullptr, std::string* used_path = nullptr);

// What a method adds to the QuantizeOptions: owned here, pointed to by the options.
struct PreparedMethod {
  QuantMethod method = QuantMethod::Rtn;
  Imatrix imatrix;                  // from the statistics (imatrix, awq, gptq, awq+gptq)
  WeightTransform transform;        // smoothing and / or AWQ
  std::vector<AwqGroupResult> awq;  // per group: alpha and the output error before / after
  double seconds = 0;               // the search's wall time (AWQ; smoothing)
};

// Fills `o` (imatrix, transform, gptq_stats, method, calibration) for `m` from `stats` (nullable for rtn
// without smoothing). smooth_alpha < 0: no smoothing. A --imatrix file already in `o` is kept as the
// importance (the statistics' own importance is used otherwise). `prepared` must outlive the quantization.
Status prepare_method(const GgufFile& in, QuantMethod m, const CalibStats* stats, double smooth_alpha,
                      const AwqOptions& awq, QuantizeOptions& o, PreparedMethod& prepared, ThreadPool& pool);

}  // namespace pocketlm
