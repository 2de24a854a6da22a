#include "plan/device_plan.h"
#include "util/byte_size.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace pocketlm {

Expected<DevicePlan> plan_for_device(const PlanModel& m, MemoryOptions o, const DeviceProfile& d) {
  DevicePlan p;
  p.device = d;
  p.budget_bytes = d.budget_bytes();
  if (o.n_threads <= 0) o.n_threads = std::max(1, d.cores);
  PLM_TRY(p.memory, plan_memory(m, o));
  p.fits = p.memory.peak_rss_bytes <= p.budget_bytes;
  p.max_context = max_context(m, o, p.budget_bytes);
  o.n_ctx = p.memory.n_ctx;
  p.best_kv_type = best_kv_type(m, o, p.budget_bytes);
  p.speed = plan_speed(m, p.memory, d);
  return p;
}

namespace {

std::string mib(uint64_t b) { return format_mib(static_cast<double>(b), 1); }

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

std::string kv_name(const std::optional<KvType>& t) { return t ? kv_type_name(*t) : "none fits"; }

std::string model_line(const PlanModel& m, const MemoryPlan& mem) {
  const ModelConfig& c = m.config;
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "model: %s%s%s (%s, %lld layers, %lld heads / %lld KV heads, head_dim %lld, vocab %lld, trained context %lld)\n"
      "context: %lld tokens, KV cache K %s / V %s\n",
      m.source.c_str(), m.recipe.empty() ? "" : " with ", m.recipe.c_str(), c.arch.c_str(),
      static_cast<long long>(c.n_layer), static_cast<long long>(c.n_head), static_cast<long long>(c.n_head_kv),
      static_cast<long long>(c.head_dim), static_cast<long long>(c.n_vocab), static_cast<long long>(c.n_ctx_train),
      static_cast<long long>(mem.n_ctx), kv_type_name(mem.type_k), kv_type_name(mem.type_v));
  return buf;
}

}  // namespace

std::string format_plan_breakdown(const PlanModel& m, const DevicePlan& p) {
  const MemoryPlan& mem = p.memory;
  const DeviceProfile& d = p.device;
  std::string out = model_line(m, mem);
  out += "device: " + d.name + " — " + d.description + "\n";
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "  %.1f GB RAM, app budget %.2f GB (%.0f %%), %.1f GB/s, %d cores, %.2f CPU int8 TOPS (SoC %.1f), %s\n\n",
      d.ram_gb, static_cast<double>(p.budget_bytes) / 1e9, d.app_share * 100, d.bandwidth_gbps, d.cores,
      d.cpu_int8_tops, d.int8_tops, d.power_w > 0 ? fmt("%.1f W", d.power_w).c_str() : "power unknown");
  out += buf;
  out += "| memory | bytes | |\n|---|---:|---|\n";
  for (const auto& [type, bytes] : mem.weights_by_type)
    out += "| weights " + std::string(type_traits(type).name) + " | " + mib(bytes) + " | |\n";
  out += "| **weights** | " + mib(mem.weights_bytes) + " | tensor table" +
         (m.recipe.empty() ? "" : " after " + m.recipe) + " |\n";
  out += "| **KV cache** | " + mib(mem.kv_bytes) +
         " | formula 2 x L x H_kv x d x T x B = " + mib(mem.kv_formula_bytes) +
         (mem.kv.without_window > mem.kv.total ? ", window saves " + mib(mem.kv.without_window - mem.kv.total)
                                               : std::string()) +
         " |\n";
  out += "| **compute scratch** | " + mib(mem.scratch_bytes) + " | 512-token batch, " +
         std::to_string(std::max(1, d.cores)) + " threads |\n";
  out += "| **runtime overhead** | " + mib(mem.overhead_bytes) + " | incl. GGUF metadata " + mib(mem.metadata_bytes) +
         " |\n";
  if (mem.draft_bytes > 0) out += "| **draft model** | " + mib(mem.draft_bytes) + " | weights + KV + scratch |\n";
  out += "| **peak RSS** | " + mib(mem.peak_rss_bytes) + " | budget " + mib(p.budget_bytes) + ": " +
         (p.fits ? "fits" : "does NOT fit") + " |\n\n";
  out += format_kv_memory(mem.kv);
  std::snprintf(buf, sizeof buf,
                "\nlargest context that fits (K %s / V %s): %lld tokens; best KV type at -c %lld: %s\n",
                kv_type_name(mem.type_k), kv_type_name(mem.type_v), static_cast<long long>(p.max_context),
                static_cast<long long>(mem.n_ctx), kv_name(p.best_kv_type).c_str());
  out += buf;
  const SpeedPlan& s = p.speed;
  std::snprintf(buf, sizeof buf,
                "\nprefill (pp512): %.1f t/s  (compute bound %.1f, weight streaming bound %.1f)\n"
                "decode (tg128): %.1f t/s  (%s-bound: roofline %.1f t/s at %.1f MiB/token, cores %.1f); at a full "
                "context: %.1f t/s\n",
                s.prefill_tps, s.prefill_compute_tps, s.prefill_memory_tps, s.decode_tps,
                s.decode_memory_bound ? "memory" : "core", s.decode_roofline_tps,
                s.decode_bytes_per_token / (1024.0 * 1024.0), s.decode_compute_tps, s.decode_tps_full_context);
  out += buf;
  if (s.joules_per_token > 0) {
    std::snprintf(buf, sizeof buf, "energy: %.3f J/token decode, %.4f J/token prefill (at %.1f W)\n",
                  s.joules_per_token, s.prefill_joules_per_token, d.power_w);
    out += buf;
  } else {
    out += "energy: unknown (no power figure for this device)\n";
  }
  return out;
}

std::string format_plan_table(const PlanModel& m, const std::vector<DevicePlan>& plans) {
  if (plans.empty()) return "";
  std::string out = model_line(m, plans.front().memory);
  const MemoryPlan& mem = plans.front().memory;
  out += "weights " + mib(mem.weights_bytes) + ", KV " + mib(mem.kv_bytes) + "\n\n";
  out +=
      "| device | budget | peak RSS | fits | max context | best KV | prefill t/s | decode t/s | J/token |\n"
      "|---|---:|---:|:---:|---:|---|---:|---:|---:|\n";
  for (const DevicePlan& p : plans) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "| %s | %s | %s | %s | %lld | %s | %.1f | %.1f | %s |\n", p.device.name.c_str(),
                  mib(p.budget_bytes).c_str(), mib(p.memory.peak_rss_bytes).c_str(), p.fits ? "yes" : "no",
                  static_cast<long long>(p.max_context), kv_name(p.best_kv_type).c_str(), p.speed.prefill_tps,
                  p.speed.decode_tps,
                  p.speed.joules_per_token > 0 ? fmt("%.3f", p.speed.joules_per_token).c_str() : "-");
    out += buf;
  }
  return out;
}

nlohmann::json plan_json_value(const PlanModel& m, const std::vector<DevicePlan>& plans) {
  using nlohmann::json;
  const ModelConfig& c = m.config;
  json j;
  j["model"] = {{"source", m.source},         {"recipe", m.recipe},   {"arch", c.arch},
                {"n_layer", c.n_layer},       {"n_head", c.n_head},   {"n_head_kv", c.n_head_kv},
                {"head_dim", c.head_dim},     {"n_vocab", c.n_vocab}, {"n_ctx_train", c.n_ctx_train},
                {"params", m.matmul_params()}};
  j["devices"] = json::array();
  for (const DevicePlan& p : plans) {
    const MemoryPlan& mem = p.memory;
    const SpeedPlan& s = p.speed;
    json by_type = json::object();
    for (const auto& [type, bytes] : mem.weights_by_type) by_type[std::string(type_traits(type).name)] = bytes;
    json d = {
        {"device", p.device.name},
        {"n_ctx", mem.n_ctx},
        {"cache_type_k", kv_type_name(mem.type_k)},
        {"cache_type_v", kv_type_name(mem.type_v)},
        {"weights_bytes", mem.weights_bytes},
        {"weights_bytes_by_type", by_type},
        {"kv_bytes", mem.kv_bytes},
        {"kv_formula_bytes", mem.kv_formula_bytes},
        {"scratch_bytes", mem.scratch_bytes},
        {"overhead_bytes", mem.overhead_bytes},
        {"metadata_bytes", mem.metadata_bytes},
        {"draft_bytes", mem.draft_bytes},
        {"peak_rss_bytes", mem.peak_rss_bytes},
        {"budget_bytes", p.budget_bytes},
        {"fits", p.fits},
        {"max_context", p.max_context},
        {"best_kv_type", p.best_kv_type ? json(kv_type_name(*p.best_kv_type)) : json(nullptr)},
        {"prefill_tps", s.prefill_tps},
        {"prefill_compute_tps", s.prefill_compute_tps},
        {"prefill_ops_per_token", s.prefill_ops_per_token},
        {"prefill_memory_tps", s.prefill_memory_tps},
        {"decode_tps", s.decode_tps},
        {"decode_tps_full_context", s.decode_tps_full_context},
        {"decode_roofline_tps", s.decode_roofline_tps},
        {"decode_compute_tps", s.decode_compute_tps},
        {"decode_bytes_per_token", s.decode_bytes_per_token},
        {"decode_weight_bytes_x16", s.decode_weight_bytes_x16},
        {"decode_kv_bytes_per_token", s.decode_kv_bytes_per_token},
        {"joules_per_token", s.joules_per_token > 0 ? json(s.joules_per_token) : json(nullptr)},
        {"bandwidth_gbps", p.device.bandwidth_gbps},
        {"cpu_int8_tops", p.device.cpu_int8_tops},
        {"measured_device", p.device.measured},
    };
    j["devices"].push_back(d);
  }
  return j;
}

std::string plan_json(const PlanModel& m, const std::vector<DevicePlan>& plans) {
  return plan_json_value(m, plans).dump(2) + "\n";
}

}  // namespace pocketlm
