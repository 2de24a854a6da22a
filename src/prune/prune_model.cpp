#include "prune/prune_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>

#include "formats/quantize.h"
#include "gguf/writer.h"
#include "prune/refit.h"
#include "util/byte_size.h"
#include "util/progress.h"

namespace pocketlm {

namespace {

bool is_gemma_27b(const std::string& arch, int64_t n_layer) {
  return (arch == "gemma2" && n_layer == 46) || (arch == "gemma3" && n_layer == 62);
}

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Splits "blk.N.rest" into N and rest; -1 for a tensor outside the blocks.
int64_t block_of(const std::string& name, std::string& rest) {
  if (name.rfind("blk.", 0) != 0) return -1;
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos) return -1;
  int64_t n = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    n = n * 10 + (name[i] - '0');
  }
  rest = name.substr(dot + 1);
  return n;
}

// The block tensors pocketlm knows how to narrow (or knows need no change).
const std::set<std::string>& known_block_tensors() {
  static const std::set<std::string> k = {"attn_norm.weight",
                                          "attn_q.weight",
                                          "attn_k.weight",
                                          "attn_v.weight",
                                          "attn_output.weight",
                                          "attn_q.bias",
                                          "attn_k.bias",
                                          "attn_v.bias",
                                          "attn_output.bias",
                                          "attn_q_norm.weight",
                                          "attn_k_norm.weight",
                                          "ffn_norm.weight",
                                          "ffn_gate.weight",
                                          "ffn_up.weight",
                                          "ffn_down.weight",
                                          "ffn_gate.bias",
                                          "ffn_up.bias",
                                          "ffn_down.bias",
                                          "post_attention_norm.weight",
                                          "post_ffw_norm.weight"};
  return k;
}

struct HeadShape {
  int64_t n_head, n_head_kv;
  bool drop_kv;  // whole KV groups go (with their query heads), rather than query heads within every group
};

// The head counts `keep` asks for: n_head_kv groups of `group` query heads allow either q query heads per
// group (all KV heads kept) or k whole groups; the nearest count to n_head * keep, within half a head.
Expected<HeadShape> head_shape(const ModelConfig& c, double keep) {
  const int64_t g = c.n_head / c.n_head_kv;
  const double target = static_cast<double>(c.n_head) * keep;
  HeadShape best{c.n_head, c.n_head_kv, false};
  double best_d = 1e30;
  std::set<int64_t> valid;
  for (int64_t q = 1; q <= g; ++q) {
    valid.insert(q * c.n_head_kv);
    const double dist = std::fabs(static_cast<double>(q * c.n_head_kv) - target);
    if (dist < best_d - 1e-9) best_d = dist, best = {q * c.n_head_kv, c.n_head_kv, false};
  }
  for (int64_t k = 1; k <= c.n_head_kv; ++k) {
    valid.insert(k * g);
    const double dist = std::fabs(static_cast<double>(k * g) - target);
    if (dist < best_d - 1e-9) best_d = dist, best = {k * g, k, true};
  }
  if (best_d > 0.5 + 1e-9) {
    std::string fr;
    char buf[32];
    for (int64_t v : valid) {
      std::snprintf(buf, sizeof buf, "%.3g", static_cast<double>(v) / static_cast<double>(c.n_head));
      fr += (fr.empty() ? "" : ", ") + std::string(buf);
    }
    char msg[160];
    std::snprintf(msg, sizeof msg, "heads keep fraction %g asks for %.2f of %lld heads", keep, target,
                  static_cast<long long>(c.n_head));
    return Error(std::string(msg) + ", which GQA grouping does not allow (" + std::to_string(c.n_head_kv) +
                 " KV heads of " + std::to_string(g) +
                 " query heads each: keep the same number of query heads in every "
                 "group, or whole groups); fractions that fit: " +
                 fr)
        .about("heads_keep");
  }
  return best;
}

int64_t ffn_width(const ModelConfig& c, const PruneOptions& o, int64_t* multiple_out = nullptr) {
  int64_t m = o.ffn_multiple;
  if (m <= 0) m = c.n_ff % 256 == 0 ? 256 : c.n_ff % 32 == 0 ? 32 : 1;
  if (multiple_out) *multiple_out = m;
  if (o.ffn_keep >= 1.0) return c.n_ff;
  const int64_t k =
      static_cast<int64_t>(std::llround(static_cast<double>(c.n_ff) * o.ffn_keep / static_cast<double>(m))) * m;
  return std::clamp<int64_t>(k, m, c.n_ff);
}

// Indices of the `k` largest scores, increasing.
std::vector<int64_t> top_k(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)]; });
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

bool heads_change(const PruneOptions& o) { return o.heads_keep < 1.0; }
bool ffn_change(const PruneOptions& o) { return o.ffn_keep < 1.0; }

}  // namespace

bool prune_needs_calibration(const PruneOptions& o) {
  return o.keep_layers >= 0 || heads_change(o) || ffn_change(o) || o.repair;
}

std::vector<std::pair<int64_t, int64_t>> absorb_runs(const Model& model, const PrunePlan& plan) {
  std::vector<std::pair<int64_t, int64_t>> runs;
  if (!plan.repair || model.config().block != ArchBlock::Llama) return runs;
  const auto& d = plan.dropped_layers;
  for (size_t i = 0; i < d.size();) {
    size_t j = i + 1;
    while (j < d.size() && d[j] == d[j - 1] + 1) ++j;
    if (d[i] >= 1) runs.emplace_back(d[i], d[j - 1] + 1);
    i = j;
  }
  return runs;
}

Status check_prunable(const Model& model, const PruneOptions& o) {
  const ModelConfig& c = model.config();
  const GgufFile& f = model.gguf();
  const std::string& a = c.arch;
  if (model.weights().outlier_k > 0)  // pruning would cut the matrices under their side columns
    return Error(f.path() +
                 ": the file has an outlier branch (pocketlm.outliers, docs/quantization.md); prune the "
                 "float model, then quantize with --outliers");
  if (!(o.heads_keep > 0 && o.heads_keep <= 1))
    return Error("heads keep fraction " + std::to_string(o.heads_keep) + " is not in (0, 1]").about("heads_keep");
  if (!(o.ffn_keep > 0 && o.ffn_keep <= 1))
    return Error("FFN keep fraction " + std::to_string(o.ffn_keep) + " is not in (0, 1]").about("ffn_keep");
  if (!o.drop_layers.empty() && o.keep_layers >= 0)
    return Error("give the layers to drop or the number of layers to keep, not both").about("drop_layers");
  std::set<int64_t> drops;
  for (int64_t l : o.drop_layers) {
    if (l < 0 || l >= c.n_layer)
      return Error(f.path() + ": layer " + std::to_string(l) + " does not exist (blocks 0.." +
                   std::to_string(c.n_layer - 1) + ")")
          .about("drop_layers");
    if (!drops.insert(l).second) return Error("layer " + std::to_string(l) + " is listed twice").about("drop_layers");
  }
  if (static_cast<int64_t>(drops.size()) >= c.n_layer)
    return Error(f.path() + ": dropping all " + std::to_string(c.n_layer) + " layers leaves no model")
        .about("drop_layers");
  if (o.keep_layers == 0 || o.keep_layers > c.n_layer)
    return Error(f.path() + ": cannot keep " + std::to_string(o.keep_layers) + " layers of " +
                 std::to_string(c.n_layer) + " (at least 1)")
        .about("keep_layers");
  const int64_t n_out = o.keep_layers >= 0 ? o.keep_layers : c.n_layer - static_cast<int64_t>(drops.size());
  if (n_out != c.n_layer) {
    if (a == "smollm3")
      return Error(f.path() +
                   ": smollm3 skips RoPE on every 4th layer by its index (in pocketlm and llama.cpp): "
                   "dropping layers would move that pattern")
          .about(o.keep_layers >= 0 ? "keep_layers" : "drop_layers");
    if (is_gemma_27b(a, c.n_layer) != is_gemma_27b(a, n_out))
      return Error(f.path() + ": " + a + " with " + std::to_string(c.n_layer) + " -> " + std::to_string(n_out) +
                   " layers: the layer count selects the 27B model's query scale (in pocketlm and llama.cpp), so the "
                   "pruned file would compute differently")
          .about(o.keep_layers >= 0 ? "keep_layers" : "drop_layers");
  }
  if (heads_change(o)) {
    if (a == "qwen2" || a == "phi3")
      return Error(f.path() + ": " + a +
                   ": llama.cpp sizes the Q projection as n_embd, so a file with fewer heads "
                   "would not load there")
          .about("heads_keep");
    if (is_gemma_27b(a, c.n_layer))
      return Error(f.path() + ": " + a +
                   " 27B: the query scale is n_embd / n_head, so removing heads changes the "
                   "computation")
          .about("heads_keep");
    if (auto h = head_shape(c, o.heads_keep); !h) return h.error();
  }
  if (ffn_change(o) && c.fused_gate_up)
    return Error(f.path() + ": " + a + ": narrowing a fused gate/up FFN is not implemented").about("ffn_keep");
  if (heads_change(o) || ffn_change(o)) {
    for (const GgufTensor& t : f.tensors()) {
      std::string rest;
      if (block_of(t.name, rest) >= 0 && !known_block_tensors().count(rest))
        return Error(f.path() + ": tensor '" + t.name + "': pocketlm does not know how to narrow it")
            .about(heads_change(o) ? "heads_keep" : "ffn_keep");
    }
  }
  return {};
}

Expected<PrunePlan> plan_pruning(const Model& model, const PruneStats* stats, const PruneOptions& o) {
  PLM_CHECK(check_prunable(model, o));
  const ModelConfig& c = model.config();
  const GgufFile& f = model.gguf();
  if (prune_needs_calibration(o) && (!stats || stats->n_layer != c.n_layer))
    return Error("pruning by score needs calibration statistics of this model");
  PrunePlan p;
  p.arch = c.arch;
  p.n_layer = c.n_layer;
  p.n_head = c.n_head;
  p.n_head_kv = c.n_head_kv;
  p.n_ff = c.n_ff;
  p.head_dim = c.head_dim;
  p.score = o.score;
  p.repair = o.repair;

  // Layers.
  std::set<int64_t> drop(o.drop_layers.begin(), o.drop_layers.end());
  if (o.keep_layers >= 0) {
    const int64_t n = c.n_layer - o.keep_layers;
    if (o.score == LayerScore::Angular) {
      p.layer_scores.assign(static_cast<size_t>(c.n_layer), std::nan(""));
      int64_t best = 0;
      for (int64_t s = 0; s + n <= c.n_layer; ++s) {
        const double dist = n > 0 ? stats->angular_distance(s, s + n) : 0.0;
        p.layer_scores[static_cast<size_t>(s)] = dist;
        if (dist < p.layer_scores[static_cast<size_t>(best)]) best = s;
      }
      for (int64_t l = best; l < best + n; ++l) drop.insert(l);
    } else {
      for (const auto& ls : stats->layers) p.layer_scores.push_back(ls.bi);
      std::vector<int64_t> idx(static_cast<size_t>(c.n_layer));
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](int64_t x, int64_t y) {
        return p.layer_scores[static_cast<size_t>(x)] < p.layer_scores[static_cast<size_t>(y)];
      });
      for (int64_t i = 0; i < n; ++i) drop.insert(idx[static_cast<size_t>(i)]);
    }
  } else if (stats) {
    for (const auto& ls : stats->layers) p.layer_scores.push_back(ls.bi);
    p.score = LayerScore::Bi;
  }
  for (int64_t l = 0; l < c.n_layer; ++l) (drop.count(l) ? p.dropped_layers : p.kept_layers).push_back(l);

  // Heads.
  HeadShape hs{c.n_head, c.n_head_kv, false};
  if (heads_change(o)) {
    PLM_TRY(hs, head_shape(c, o.heads_keep));
  }
  p.out_n_head = hs.n_head;
  p.out_n_head_kv = hs.n_head_kv;
  int64_t multiple = 1;
  p.out_n_ff = ffn_width(c, o, &multiple);
  if (ffn_change(o) && p.out_n_ff == c.n_ff)
    p.notes.push_back("FFN keep " + std::to_string(o.ffn_keep) + " rounds to all " + std::to_string(c.n_ff) +
                      " channels (multiples of " + std::to_string(multiple) + ")");
  const int64_t g = c.n_head / c.n_head_kv, g_out = hs.n_head / hs.n_head_kv;
  p.kept_heads.resize(static_cast<size_t>(c.n_layer));
  p.kept_kv_heads.resize(static_cast<size_t>(c.n_layer));
  p.kept_channels.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l : p.kept_layers) {
    auto& kh = p.kept_heads[static_cast<size_t>(l)];
    auto& kkv = p.kept_kv_heads[static_cast<size_t>(l)];
    const std::vector<double>* hscore = stats ? &stats->layers[static_cast<size_t>(l)].head : nullptr;
    if (!heads_change(o)) {
      kh.resize(static_cast<size_t>(c.n_head));
      std::iota(kh.begin(), kh.end(), 0);
      kkv.resize(static_cast<size_t>(c.n_head_kv));
      std::iota(kkv.begin(), kkv.end(), 0);
    } else if (hs.drop_kv) {
      std::vector<double> gs(static_cast<size_t>(c.n_head_kv), 0.0);
      for (int64_t h = 0; h < c.n_head; ++h) gs[static_cast<size_t>(h / g)] += (*hscore)[static_cast<size_t>(h)];
      kkv = top_k(gs, hs.n_head_kv);
      for (int64_t kv : kkv)
        for (int64_t i = 0; i < g; ++i) kh.push_back(kv * g + i);
    } else {
      kkv.resize(static_cast<size_t>(c.n_head_kv));
      std::iota(kkv.begin(), kkv.end(), 0);
      for (int64_t kv = 0; kv < c.n_head_kv; ++kv) {
        std::vector<double> in_group((*hscore).begin() + kv * g, (*hscore).begin() + (kv + 1) * g);
        for (int64_t i : top_k(in_group, g_out)) kh.push_back(kv * g + i);
      }
    }
    auto& kc = p.kept_channels[static_cast<size_t>(l)];
    if (p.out_n_ff == c.n_ff) {
      kc.resize(static_cast<size_t>(c.n_ff));
      std::iota(kc.begin(), kc.end(), 0);
    } else {
      kc = top_k(stats->layers[static_cast<size_t>(l)].ffn, p.out_n_ff);
    }
  }
  if (o.repair && p.out_n_head == c.n_head && p.out_n_ff == c.n_ff && p.dropped_layers.empty())
    p.notes.push_back(
        "repair refits attn_output and ffn_down after heads or FFN channels go, and the block before dropped "
        "blocks: nothing to refit here");
  if (o.repair && (!stats || (stats->layers.front().ffn_gram.empty() && stats->layers.front().attn_gram.empty())))
    return Error("the repair needs the Gram matrices of the calibration activations (PruneStatsOptions::gram)")
        .about("repair");

  std::vector<int64_t> absorbs(static_cast<size_t>(c.n_layer), -1);  // block -> end of the run it absorbs
  if (o.repair && !p.dropped_layers.empty()) {
    if (c.block != ArchBlock::Llama)
      p.notes.push_back("no repair for dropped blocks of " + c.arch +
                        ": its norm after the FFN makes the fold nonlinear");
    else if (p.dropped_layers.front() == 0)
      p.notes.push_back("block 0 dropped: no block before it to absorb what it added");
    for (const auto& [a, b] : absorb_runs(model, p)) {
      const LayerPruneStats& ls = stats->layers[static_cast<size_t>(a - 1)];
      if (ls.absorb_end != b || ls.ffn_gram.empty())
        return Error("the repair of dropped blocks " + std::to_string(a) + ".." + std::to_string(b - 1) +
                     " needs their calibration cross moments (PruneStatsOptions::absorb)")
            .about("repair");
      absorbs[static_cast<size_t>(a - 1)] = b;
    }
  }

  // Tensors.
  const bool heads = p.out_n_head != c.n_head, kv_heads = p.out_n_head_kv != c.n_head_kv, ffn = p.out_n_ff != c.n_ff;
  std::vector<int64_t> new_index(static_cast<size_t>(c.n_layer), -1);
  for (size_t i = 0; i < p.kept_layers.size(); ++i)
    new_index[static_cast<size_t>(p.kept_layers[i])] = static_cast<int64_t>(i);
  for (const GgufTensor& t : f.tensors()) {
    p.bytes += t.nbytes;
    std::string rest;
    const int64_t blk = block_of(t.name, rest);
    if (blk >= c.n_layer)
      return Error(f.path() + ": tensor '" + t.name + "': block " + std::to_string(blk) + " beyond block_count");
    if (blk >= 0 && new_index[static_cast<size_t>(blk)] < 0) continue;
    PruneTensorPlan tp;
    tp.name = t.name;
    tp.out_name = blk >= 0 ? "blk." + std::to_string(new_index[static_cast<size_t>(blk)]) + "." + rest : t.name;
    tp.type = tp.out_type = t.type;
    tp.ne.assign(t.ne, t.ne + t.n_dims);
    tp.out_ne = tp.ne;
    tp.bytes = t.nbytes;
    using E = PruneTensorPlan::Edit;
    if (blk >= 0) {
      if (heads && (rest == "attn_q.weight")) tp.edit = E::Rows, tp.out_ne[1] = p.out_n_head * c.head_dim;
      if (heads && (rest == "attn_q.bias")) tp.edit = E::Columns, tp.out_ne[0] = p.out_n_head * c.head_dim;
      if (kv_heads && (rest == "attn_k.weight" || rest == "attn_v.weight"))
        tp.edit = E::Rows, tp.out_ne[1] = p.out_n_head_kv * c.head_dim;
      if (kv_heads && (rest == "attn_k.bias" || rest == "attn_v.bias"))
        tp.edit = E::Columns, tp.out_ne[0] = p.out_n_head_kv * c.head_dim;
      if (heads && rest == "attn_output.weight")
        tp.edit = E::Columns, tp.out_ne[0] = p.out_n_head * c.head_dim, tp.refit = o.repair;
      if (ffn && (rest == "ffn_gate.weight" || rest == "ffn_up.weight")) tp.edit = E::Rows, tp.out_ne[1] = p.out_n_ff;
      if (ffn && (rest == "ffn_gate.bias" || rest == "ffn_up.bias")) tp.edit = E::Columns, tp.out_ne[0] = p.out_n_ff;
      if (ffn && rest == "ffn_down.weight") tp.edit = E::Columns, tp.out_ne[0] = p.out_n_ff, tp.refit = o.repair;
      if (rest == "ffn_down.weight" && absorbs[static_cast<size_t>(blk)] >= 0) tp.edit = E::Columns, tp.refit = true;
      if ((tp.edit == E::Columns || tp.refit) && !is_float_type(t.type)) tp.out_type = GgmlType::F32;
      if (tp.refit && ((rest == "ffn_down.weight" && stats->layers[static_cast<size_t>(blk)].ffn_gram.empty()) ||
                       (rest == "attn_output.weight" && stats->layers[static_cast<size_t>(blk)].attn_gram.empty())))
        return Error("the repair needs the Gram matrices of the calibration activations").about("repair");
    }
    if (tp.edit != E::Copy && !type_traits(t.type).can_dequantize)
      return Error(f.path() + ": tensor '" + t.name + "': type " + std::string(type_traits(t.type).name) +
                   " cannot be read to prune it");
    int64_t rows = 1;
    for (size_t d = 1; d < tp.out_ne.size(); ++d) rows *= tp.out_ne[d];
    tp.out_bytes = row_size(tp.out_type, tp.out_ne[0]) * static_cast<uint64_t>(rows);
    p.out_bytes += tp.out_bytes;
    p.tensors.push_back(std::move(tp));
  }
  for (const auto& tp : p.tensors)
    if (tp.out_type != tp.type) {
      p.notes.push_back(
          "quantized tensors whose columns change are written as f32: requantize the output (pocketlm quantize)");
      break;
    }
  return p;
}

namespace {

// Copies the selected rows (each `unit` rows long, at unit * index) of a tensor's bytes.
void select_rows(const GgufTensor& t, const std::vector<int64_t>& idx, int64_t unit, std::vector<uint8_t>& out) {
  const size_t rb = row_size(t.type, t.ne[0]);
  out.resize(rb * idx.size() * static_cast<size_t>(unit));
  size_t o = 0;
  for (int64_t i : idx) {
    std::memcpy(out.data() + o, t.data + static_cast<size_t>(i * unit) * rb, rb * static_cast<size_t>(unit));
    o += rb * static_cast<size_t>(unit);
  }
}

// Expands unit indices (heads) to element indices (unit * i + 0..unit-1).
std::vector<int64_t> expand(const std::vector<int64_t>& idx, int64_t unit) {
  std::vector<int64_t> r;
  for (int64_t i : idx)
    for (int64_t k = 0; k < unit; ++k) r.push_back(i * unit + k);
  return r;
}

}  // namespace

Expected<PruneResult> write_pruned_model(const Model& model, const PrunePlan& plan, const PruneStats* stats,
                                         const PruneOptions& o, const std::string& out_path) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = model.config();
  const GgufFile& f = model.gguf();
  if (plan.n_layer != c.n_layer || plan.arch != c.arch) return Error("prune: the plan was made for another model");
  const std::string p = c.arch + ".";
  const bool dropped = !plan.dropped_layers.empty();
  GgufWriter w;
  for (const auto& [key, value] : f.metadata()) {
    if (key == "general.alignment") continue;
    if (dropped && key.rfind(p, 0) == 0 && value.type == GgufType::ARRAY &&
        value.arr.size() == static_cast<size_t>(c.n_layer)) {
      std::vector<GgufValue> kept;  // a per-layer array: the kept layers' entries
      for (int64_t l : plan.kept_layers) kept.push_back(value.arr[static_cast<size_t>(l)]);
      w.set(key, GgufValue::of_array(value.elem_type, std::move(kept)));
      continue;
    }
    w.set(key, value);
  }
  if (f.has("general.alignment") || f.alignment() != kGgufDefaultAlignment) w.set_alignment(f.alignment());
  w.set(p + "block_count", GgufValue::of_u32(static_cast<uint32_t>(plan.kept_layers.size())));
  w.set(p + "feed_forward_length", GgufValue::of_u32(static_cast<uint32_t>(plan.out_n_ff)));
  w.set(p + "attention.head_count", GgufValue::of_u32(static_cast<uint32_t>(plan.out_n_head)));
  w.set(p + "attention.head_count_kv", GgufValue::of_u32(static_cast<uint32_t>(plan.out_n_head_kv)));
  if (plan.out_n_head != c.n_head) {  // both readers default the head size to n_embd / n_head
    w.set(p + "attention.key_length", GgufValue::of_u32(static_cast<uint32_t>(c.head_dim)));
    w.set(p + "attention.value_length", GgufValue::of_u32(static_cast<uint32_t>(c.head_dim_v)));
  }
  // Gemma's local/global layout given as a period (or by default): one flag per kept layer.
  if (dropped && c.sliding_window > 0 && !c.layer_is_local.empty()) {
    const GgufValue* pat = f.find(p + "attention.sliding_window_pattern");
    if (!pat || pat->type != GgufType::ARRAY) {
      std::vector<GgufValue> flags;
      for (int64_t l : plan.kept_layers)
        flags.push_back(GgufValue::of_bool(c.layer_is_local[static_cast<size_t>(l)] != 0));
      if (c.block == ArchBlock::Gemma)
        w.set(p + "attention.sliding_window_pattern", GgufValue::of_array(GgufType::BOOL, std::move(flags)));
    }
  }
  std::vector<int32_t> dl(plan.dropped_layers.begin(), plan.dropped_layers.end());
  w.set("pocketlm.prune.dropped_layers", GgufValue::of_i32s(dl));
  w.set("pocketlm.prune.head_count", GgufValue::of_u32(static_cast<uint32_t>(c.n_head)));
  w.set("pocketlm.prune.head_count_kv", GgufValue::of_u32(static_cast<uint32_t>(c.n_head_kv)));
  w.set("pocketlm.prune.feed_forward_length", GgufValue::of_u32(static_cast<uint32_t>(c.n_ff)));
  w.set("pocketlm.prune.repair", GgufValue::of_bool(plan.repair));

  auto progress =
      o.progress ? std::make_unique<Progress>("prune", static_cast<int64_t>(plan.tensors.size()), "tensors") : nullptr;
  for (const PruneTensorPlan& tp : plan.tensors) {
    const GgufTensor* t = f.tensor(tp.name);
    if (!t) return Error("prune: the plan was made for another model (no tensor '" + tp.name + "')");
    std::string rest;
    const int64_t blk = block_of(tp.name, rest);
    PLM_CHECK(
        w.add_tensor_lazy(tp.out_name, tp.out_type, tp.out_ne, [&, t, blk, rest](std::vector<uint8_t>& out) -> Status {
          if (o.cancel && o.cancel->load()) return Error("interrupted");
          using E = PruneTensorPlan::Edit;
          const size_t b = blk >= 0 ? static_cast<size_t>(blk) : 0;
          const int64_t hd = c.head_dim;
          if (tp.edit == E::Copy) {
            out.assign(t->data, t->data + t->nbytes);
          } else if (tp.edit == E::Rows) {
            if (rest == "attn_q.weight")
              select_rows(*t, plan.kept_heads[b], hd, out);
            else if (rest == "attn_k.weight" || rest == "attn_v.weight")
              select_rows(*t, plan.kept_kv_heads[b], hd, out);
            else
              select_rows(*t, plan.kept_channels[b], 1, out);
          } else {
            std::vector<int64_t> cols;
            if (rest == "attn_q.bias" || rest == "attn_output.weight")
              cols = expand(plan.kept_heads[b], hd);
            else if (rest == "attn_k.bias" || rest == "attn_v.bias")
              cols = expand(plan.kept_kv_heads[b], hd);
            else
              cols = plan.kept_channels[b];
            const std::vector<float> src = tensor_to_f32(*t);
            const int64_t n = t->ne[0], rows = t->n_rows(), k = static_cast<int64_t>(cols.size());
            std::vector<float> dst;
            if (tp.refit) {
              const LayerPruneStats& ls = stats->layers[b];
              const bool ffn_down = rest == "ffn_down.weight";
              // The block before a dropped run also learns what the run added (its cross moments).
              const bool absorbs = ffn_down && ls.absorb_end >= 0 &&
                                   std::binary_search(plan.dropped_layers.begin(), plan.dropped_layers.end(), blk + 1);
              PLM_TRY(dst, refit_columns(src, rows, n, ffn_down ? ls.ffn_gram : ls.attn_gram, cols, o.ridge,
                                         absorbs ? std::span<const float>(ls.absorb_cross) : std::span<const float>()));
            } else {
              dst.resize(static_cast<size_t>(rows * k));
              for (int64_t r = 0; r < rows; ++r)
                for (int64_t i = 0; i < k; ++i)
                  dst[static_cast<size_t>(r * k + i)] = src[static_cast<size_t>(r * n + cols[static_cast<size_t>(i)])];
            }
            out.resize(row_size(tp.out_type, k) * static_cast<size_t>(rows));
            PLM_TRY(size_t written, quantize_rows(tp.out_type, dst.data(), out.data(), rows, k, nullptr, nullptr));
            (void)written;
          }
          if (progress) progress->add();
          return {};
        }));
  }
  if (auto st = w.write(out_path); !st) return st.error().with_context(out_path);
  if (progress) progress->finish();
  PruneResult r;
  r.file_bytes = 0;
  if (auto out = GgufFile::open(out_path)) r.file_bytes = out->file_size();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string format_prune_plan(const PrunePlan& p) {
  std::string s;
  char buf[256];
  std::snprintf(
      buf, sizeof buf,
      "arch %s: %lld -> %zu layers, heads %lld/%lld kv -> %lld/%lld kv (head size %lld), FFN %lld -> %lld%s\n",
      p.arch.c_str(), static_cast<long long>(p.n_layer), p.kept_layers.size(), static_cast<long long>(p.n_head),
      static_cast<long long>(p.n_head_kv), static_cast<long long>(p.out_n_head),
      static_cast<long long>(p.out_n_head_kv), static_cast<long long>(p.head_dim), static_cast<long long>(p.n_ff),
      static_cast<long long>(p.out_n_ff), p.repair ? ", least-squares repair" : "");
  s += buf;
  if (!p.layer_scores.empty()) {
    s += p.score == LayerScore::Angular
             ? "layer scores (angular distance of the run of dropped blocks starting here; lower = more redundant):\n"
             : "layer scores (Block Influence 1 - cos(in, out); lower = more redundant):\n";
    for (size_t l = 0; l < p.layer_scores.size(); ++l) {
      const bool drop = std::find(p.dropped_layers.begin(), p.dropped_layers.end(), static_cast<int64_t>(l)) !=
                        p.dropped_layers.end();
      if (std::isnan(p.layer_scores[l]))
        std::snprintf(buf, sizeof buf, "  block %2zu        -%s\n", l, drop ? "  dropped" : "");
      else
        std::snprintf(buf, sizeof buf, "  block %2zu  %.4f%s\n", l, p.layer_scores[l], drop ? "  dropped" : "");
      s += buf;
    }
  }
  std::string dl;
  for (int64_t l : p.dropped_layers) dl += (dl.empty() ? "" : ",") + std::to_string(l);
  s += "dropped layers: " + (dl.empty() ? std::string("none") : dl) + "\n";
  int touched = 0;
  for (const auto& t : p.tensors) touched += t.edit != PruneTensorPlan::Edit::Copy;
  std::snprintf(buf, sizeof buf, "tensors: %zu written (%d narrowed), %s -> %s (saves %s, %.1f %%)\n", p.tensors.size(),
                touched, human_bytes(static_cast<double>(p.bytes)).c_str(),
                human_bytes(static_cast<double>(p.out_bytes)).c_str(),
                human_bytes(static_cast<double>(p.bytes - p.out_bytes)).c_str(),
                p.bytes ? 100.0 * static_cast<double>(p.bytes - p.out_bytes) / static_cast<double>(p.bytes) : 0.0);
  s += buf;
  for (const auto& n : p.notes) s += "note: " + n + "\n";
  return s;
}

}  // namespace pocketlm
