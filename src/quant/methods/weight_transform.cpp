#include "quant/methods/weight_transform.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/dequantize.h"
#include "gguf/reader.h"
#include "quant/methods/calib_stats.h"

namespace pocketlm {

bool WeightTransform::touches(std::string_view name) const {
  const std::string k(name);
  return col_scale.count(k) || row_scale.count(k) || vec_scale.count(k);
}

const std::vector<float>* WeightTransform::col(std::string_view name) const {
  auto it = col_scale.find(std::string(name));
  return it == col_scale.end() ? nullptr : &it->second;
}

void WeightTransform::apply(std::string_view name, float* rows, int64_t n_per_row, int64_t n_rows) const {
  const std::string k(name);
  if (auto it = vec_scale.find(k); it != vec_scale.end()) {
    const std::vector<float>& s = it->second;
    for (int64_t i = 0; i < n_per_row * n_rows; ++i) rows[i] *= s[static_cast<size_t>(i % n_per_row)];
  }
  if (auto it = col_scale.find(k); it != col_scale.end()) {
    const std::vector<float>& s = it->second;
    for (int64_t r = 0; r < n_rows; ++r)
      for (int64_t c = 0; c < n_per_row; ++c) rows[r * n_per_row + c] *= s[static_cast<size_t>(c)];
  }
  if (auto it = row_scale.find(k); it != row_scale.end()) {
    const std::vector<float>& s = it->second;
    for (int64_t r = 0; r < n_rows; ++r)
      for (int64_t c = 0; c < n_per_row; ++c)
        rows[r * n_per_row + c] *= s[static_cast<size_t>(r % static_cast<int64_t>(s.size()))];
  }
}

void WeightTransform::compose(const WeightTransform& next) {
  const auto merge = [](std::map<std::string, std::vector<float>>& into,
                        const std::map<std::string, std::vector<float>>& from) {
    for (const auto& [k, v] : from) {
      auto [it, inserted] = into.try_emplace(k, v);
      if (!inserted)
        for (size_t i = 0; i < v.size(); ++i) it->second[i] *= v[i];
    }
  };
  merge(col_scale, next.col_scale);
  merge(row_scale, next.row_scale);
  merge(vec_scale, next.vec_scale);
}

std::vector<ScaleGroup> scale_groups(const GgufFile& model) {
  std::vector<ScaleGroup> groups;
  const auto is_2d = [&](const std::string& name) {
    const GgufTensor* t = model.tensor(name);
    return t && t->ne[2] == 1 && t->ne[3] == 1 && t->ne[1] > 1;
  };
  const auto norm_ok = [&](const std::string& name, int64_t width) {
    const GgufTensor* t = model.tensor(name);
    return t && t->type == GgmlType::F32 && t->ne[0] == width && t->n_rows() == 1;
  };
  for (int64_t l = 0;; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    if (!model.tensor(p + "attn_norm.weight") && !model.tensor(p + "ffn_norm.weight")) break;
    const std::string q = p + "attn_q.weight", k = p + "attn_k.weight", v = p + "attn_v.weight";
    if (is_2d(q) && is_2d(k) && is_2d(v) && norm_ok(p + "attn_norm.weight", model.tensor(q)->ne[0]))
      groups.push_back({p + "attn_norm.weight", true, {q, k, v}});
    const std::string gate = p + "ffn_gate.weight", up = p + "ffn_up.weight", down = p + "ffn_down.weight";
    if (is_2d(gate) && is_2d(up) && norm_ok(p + "ffn_norm.weight", model.tensor(up)->ne[0]))
      groups.push_back({p + "ffn_norm.weight", true, {gate, up}});
    if (is_2d(gate) && is_2d(up) && is_2d(down) && model.tensor(up)->ne[1] == model.tensor(down)->ne[0])
      groups.push_back({up, false, {down}});
  }
  return groups;
}

void set_group_scale(WeightTransform& t, const ScaleGroup& g, const std::vector<float>& s) {
  std::vector<float> inv(s.size());
  for (size_t i = 0; i < s.size(); ++i) inv[i] = 1.0f / s[i];
  WeightTransform step;
  for (const std::string& w : g.weights) step.col_scale[w] = s;
  (g.source_is_norm ? step.vec_scale : step.row_scale)[g.source] = inv;
  t.compose(step);
}

Status check_finite_weights(const GgufFile& model) {
  for (const GgufTensor& t : model.tensors()) {
    if (t.type != GgmlType::F32 && t.type != GgmlType::F16 && t.type != GgmlType::BF16) continue;
    const std::vector<float> v = tensor_as_floats(t);
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i]))
        return Error(model.path() + ": tensor '" + t.name + "' element " + std::to_string(i) + " (row " +
                     std::to_string(static_cast<int64_t>(i) / t.ne[0]) + ", column " +
                     std::to_string(static_cast<int64_t>(i) % t.ne[0]) + ") is " + (std::isnan(v[i]) ? "NaN" : "Inf") +
                     ": the model cannot be calibrated or quantized");
  }
  return Status::Ok();
}

std::vector<float> tensor_as_floats(const GgufTensor& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  if (v.empty()) return v;
  if (t.type == GgmlType::F32) {
    std::memcpy(v.data(), t.data, v.size() * sizeof(float));
    return v;
  }
  const int64_t n = t.ne[0];
  const size_t rs = row_size(t.type, n);
  for (int64_t r = 0; r < t.n_rows(); ++r)
    dequantize_row(t.type, t.data + static_cast<size_t>(r) * rs, v.data() + r * n, n);
  return v;
}

Expected<WeightTransform> smooth_transform(const GgufFile& model, const CalibStats& stats, double alpha) {
  if (!(alpha >= 0 && alpha <= 1)) return Error("--smooth: alpha must be in [0, 1], not " + std::to_string(alpha));
  WeightTransform t;
  for (const ScaleGroup& g : scale_groups(model)) {
    const InputStats* in = stats.find(g.weights.front());
    if (!in) continue;
    const int64_t n = in->n;
    std::vector<float> wmax(static_cast<size_t>(n), 0.0f);
    for (const std::string& name : g.weights) {
      const GgufTensor* w = model.tensor(name);
      if (w->ne[0] != n)
        return Error(name + ": rows of " + std::to_string(w->ne[0]) + " values, but its calibration input has " +
                     std::to_string(n));
      const std::vector<float> f = tensor_as_floats(*w);
      for (int64_t r = 0; r < w->n_rows(); ++r)
        for (int64_t c = 0; c < n; ++c)
          wmax[static_cast<size_t>(c)] =
              std::max(wmax[static_cast<size_t>(c)], std::fabs(f[static_cast<size_t>(r * n + c)]));
    }
    std::vector<float> s(static_cast<size_t>(n), 1.0f);
    for (int64_t c = 0; c < n; ++c) {
      const double xm = in->abs_max[static_cast<size_t>(c)], wm = wmax[static_cast<size_t>(c)];
      if (xm > 0 && wm > 0)
        s[static_cast<size_t>(c)] =
            static_cast<float>(std::clamp(std::pow(xm, alpha) / std::pow(wm, 1.0 - alpha), 1e-4, 1e4));
    }
    set_group_scale(t, g, s);
  }
  return t;
}

}  // namespace pocketlm
