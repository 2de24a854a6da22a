#include "quant/methods/outliers.h"

#include <algorithm>
#include <numeric>
#include <regex>

#include "formats/float.h"

namespace pocketlm {
namespace {
constexpr std::string_view kWeight = ".weight";
std::string_view base_of(std::string_view weight) {
  return weight.ends_with(kWeight) ? weight.substr(0, weight.size() - kWeight.size()) : weight;
}
}  // namespace

bool takes_outliers(std::string_view weight) {
  static const std::regex re(
      R"(^blk\.[0-9]+\.(attn_q|attn_k|attn_v|attn_qkv|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$)");
  return std::regex_match(weight.begin(), weight.end(), re);
}

std::string outlier_w_name(std::string_view weight) { return std::string(base_of(weight)) + ".outlier_w"; }
std::string outlier_idx_name(std::string_view weight) { return std::string(base_of(weight)) + ".outlier_idx"; }
bool is_outlier_tensor(std::string_view name) { return name.ends_with(".outlier_w") || name.ends_with(".outlier_idx"); }

std::vector<int32_t> select_outlier_channels(const InputStats& st, int64_t k, const std::vector<float>* col) {
  std::vector<double> score(static_cast<size_t>(st.n));
  for (int64_t j = 0; j < st.n; ++j) {
    const double c = col ? static_cast<double>((*col)[static_cast<size_t>(j)]) : 1.0;
    score[static_cast<size_t>(j)] = st.mean_sq(j) / (c * c);
  }
  std::vector<int32_t> order(static_cast<size_t>(st.n));
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, st.n);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    const double sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
    return sa != sb ? sa > sb : a < b;
  });
  order.resize(static_cast<size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

void split_outlier_columns(float* w, int64_t n_rows, int64_t n_in, std::span<const int32_t> idx, uint16_t* side) {
  const int64_t k = static_cast<int64_t>(idx.size());
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t j = 0; j < k; ++j) {
      float& v = w[r * n_in + idx[static_cast<size_t>(j)]];
      side[r * k + j] = fp32_to_fp16(v);
      v = 0.0f;
    }
}

}  // namespace pocketlm
