#include "quant/methods/method.h"

#include <chrono>
#include <filesystem>
#include <map>

#include "gguf/reader.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace pocketlm {

Expected<QuantMethod> parse_quant_method(std::string_view name) {
  if (name == "rtn") return QuantMethod::Rtn;
  if (name == "imatrix") return QuantMethod::Imatrix;
  if (name == "awq") return QuantMethod::Awq;
  if (name == "gptq") return QuantMethod::Gptq;
  if (name == "awq+gptq" || name == "gptq+awq") return QuantMethod::AwqGptq;
  return Error("unknown quantization method '" + std::string(name) + "' (methods: rtn imatrix awq gptq awq+gptq)");
}

std::string_view quant_method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::Rtn: return "rtn";
    case QuantMethod::Imatrix: return "imatrix";
    case QuantMethod::Awq: return "awq";
    case QuantMethod::Gptq: return "gptq";
    case QuantMethod::AwqGptq: return "awq+gptq";
  }
  return "?";
}

bool method_uses_awq(QuantMethod m) { return m == QuantMethod::Awq || m == QuantMethod::AwqGptq; }
bool method_uses_gptq(QuantMethod m) { return m == QuantMethod::Gptq || m == QuantMethod::AwqGptq; }
bool method_needs_calibration(QuantMethod m, bool smooth) { return m != QuantMethod::Rtn || smooth; }
bool method_needs_gram(QuantMethod m) { return method_uses_awq(m) || method_uses_gptq(m); }

Expected<CalibStats> calibration_stats(const GgufFile& in, Session& session, const CalibrationRequest& r,
                                       ThreadPool& pool, bool* from_cache, std::string* used_path) {
  int64_t total = 0;
  for (const auto& s : r.sequences) total += static_cast<int64_t>(s.size());
  if (total == 0) return Error("calibration: no tokens to calibrate on (the calibration text is empty)");
  const std::string model_id = model_fingerprint(in);
  const std::string data_id = tokens_fingerprint(r.sequences) + (r.gram ? "g" : "");
  const std::string path = r.cache_path.empty() ? default_calib_cache_path(model_id, data_id) : r.cache_path;
  if (used_path) *used_path = path;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    PLM_TRY(CalibStats s, read_calib_stats(path));
    PLM_CHECK(check_calib_stats(s, model_id, data_id, path));
    if (from_cache) *from_cache = true;
    return s;
  }
  CalibCollectOptions co;
  co.gram = r.gram;
  CalibCollector collector(co);
  std::unique_ptr<Progress> progress;
  if (r.progress) progress = std::make_unique<Progress>("calibrate", total, "tokens");
  PLM_CHECK(collect_calib_stats(session, r.sequences, r.n_batch, collector, pool, [&](int64_t n) {
    if (progress) progress->add(n);
  }));
  if (progress) progress->finish();
  CalibStats s = collector.result();
  if (s.inputs.empty())
    return Error("calibration: no layer weight saw a batch of at least " + std::to_string(co.min_tokens) +
                 " tokens (give longer calibration text)");
  s.model_id = model_id;
  s.data_id = data_id;
  s.data_name = r.data_name;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  PLM_CHECK(write_calib_stats(s, path));
  if (from_cache) *from_cache = false;
  return s;
}

Status prepare_method(const GgufFile& in, QuantMethod m, const CalibStats* stats, double smooth_alpha,
                      const AwqOptions& awq, QuantizeOptions& o, PreparedMethod& prepared, ThreadPool& pool) {
  prepared.method = m;
  const bool smooth = smooth_alpha >= 0;
  if (method_needs_calibration(m, smooth) && !stats)
    return Error("--method " + std::string(quant_method_name(m)) + (smooth ? " with --smooth" : "") +
                 " needs calibration data (--calib FILE or --tasks FILE.jsonl)");
  o.method = std::string(quant_method_name(m)) + (smooth ? " smooth=" + std::to_string(smooth_alpha).substr(0, 4) : "");
  if (stats) o.calibration = stats->data_name;
  if (m != QuantMethod::Rtn && !o.imatrix) {
    prepared.imatrix = stats->to_imatrix();
    o.imatrix = &prepared.imatrix;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (smooth) {
    PLM_TRY(prepared.transform, smooth_transform(in, *stats, smooth_alpha));
  }
  if (method_uses_awq(m)) {
    // The types the weights will get, from the plan without the rescaling.
    PLM_TRY(QuantizePlan plan0, plan_quantization(in, o));
    std::map<std::string, GgmlType> types;
    for (const auto& t : plan0.tensors) types[t.name] = t.type;
    const auto type_of = [&](const std::string& name) {
      auto it = types.find(name);
      return it == types.end() ? GgmlType::F32 : it->second;
    };
    const std::vector<ScaleGroup> groups = scale_groups(in);
    std::unique_ptr<Progress> progress;
    if (o.progress) progress = std::make_unique<Progress>("awq search", static_cast<int64_t>(groups.size()), "groups");
    PLM_TRY(prepared.transform,
            awq_search(in, *stats, type_of, awq, smooth ? &prepared.transform : nullptr, pool, &prepared.awq, [&] {
              if (progress) progress->add(1);
            }));
    if (progress) progress->finish();
  }
  prepared.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!prepared.transform.empty()) o.transform = &prepared.transform;
  if (method_uses_gptq(m)) o.gptq_stats = stats;
  return Status::Ok();
}

}  // namespace pocketlm
