// pocketlm inspect: a GGUF file's metadata and tensor table, with totals and bits per weight.
#include <cstdio>
#include <map>
#include <memory>

#include "commands.h"
#include "common.h"
#include "gguf/reader.h"
#include "kernels/dispatch.h"
#include "model/config.h"
#include "model/kv_memory.h"
#include "model/weights.h"
#include "model/weights_repack.h"
#include "quant/methods/outliers.h"
#include "runtime/session.h"

namespace pocketlm::cli {
namespace {

struct InspectFlags {
  std::string model;
  bool no_tensors = false;
  int64_t n_ctx = 0;  // > 0: print the KV cache memory for this context
  std::string cache_type_k = "f16", cache_type_v = "f16";
  int64_t kv_block = 32;
};

// The KV cache a session of f.n_ctx tokens would hold, by layer kind, with its formula.
int print_kv_memory(const GgufFile& g, const InspectFlags& f) {
  auto c = ModelConfig::from_gguf(g);
  auto tk = parse_kv_type(f.cache_type_k);
  auto tv = parse_kv_type(f.cache_type_v);
  if (!c || !tk || !tv) {
    std::fprintf(stderr, "error: %s\n", (!c ? c.error() : !tk ? tk.error() : tv.error()).message().c_str());
    return 1;
  }
  SessionOptions o;
  o.kv_type = *tk;
  o.kv_type_v = *tv;
  o.kv_block = f.kv_block;
  const KvLayout layout = kv_layout_for(*c, o);
  if (auto st = layout.validate(); !st) {
    print_error(st.error());
    return 1;
  }
  std::printf("\n## KV cache\n\n%s", format_kv_memory(kv_memory_report(layout, f.n_ctx, kMaxBatch)).c_str());
  return 0;
}

// What `run` would hold in the x16 decode layout on this CPU (model/weights_repack.h), for a model pocketlm
// can run.
void print_decode_layout(const GgufFile& g) {
  auto config = ModelConfig::from_gguf(g);
  if (!config) return;
  auto weights = ModelWeights::bind(g, *config);
  if (!weights) return;
  size_t bytes = 0;
  const auto tensors = RepackedWeights::candidates(*weights);
  for (const GgufTensor* t : tensors) bytes += t->nbytes;
  std::printf(
      "decode layout on this CPU (%s kernels): %zu tensors, %s, held row-interleaved (x16) at load, their "
      "mapped pages released (POCKETLM_REPACK=0: keep the file's rows)\n",
      kernels::active_table().name, tensors.size(), human_bytes(static_cast<double>(bytes)).c_str());
}

int inspect(const InspectFlags& f) {
  auto g = GgufFile::open(f.model);
  if (!g) {
    print_error(g.error());
    return 1;
  }
  std::printf("file: %s\nGGUF version %u, %zu metadata keys, %zu tensors, alignment %llu, data at byte %llu, %s\n\n",
              f.model.c_str(), g->version(), g->metadata().size(), g->tensors().size(),
              static_cast<unsigned long long>(g->alignment()), static_cast<unsigned long long>(g->data_offset()),
              human_bytes(static_cast<double>(g->file_size())).c_str());
  std::printf("## metadata\n\n| key | type | value |\n|---|---|---|\n");
  for (const auto& [key, v] : g->metadata()) {
    std::string type(gguf_type_name(v.type));
    if (v.type == GgufType::ARRAY) type += "<" + std::string(gguf_type_name(v.elem_type)) + ">";
    std::string shown = v.to_display(6);
    for (auto& c : shown)
      if (c == '|') c = '/';
    std::printf("| %s | %s | %s |\n", key.c_str(), type.c_str(), shown.c_str());
  }
  int64_t total_el = 0;
  size_t total_bytes = 0;
  std::map<std::string, std::pair<int, size_t>> by_type;
  if (!f.no_tensors) std::printf("\n## tensors\n\n| name | type | shape | bytes |\n|---|---|---|---:|\n");
  size_t side_bytes = 0;
  int side_matrices = 0;
  std::map<std::string, int> only;  // pocketlm-only types (ggml_type.h): llama.cpp cannot read the file
  for (const auto& t : g->tensors()) {
    const TypeTraits& tt = type_traits(t.type);
    const std::string type = std::string(tt.name) + (tt.pocketlm_only ? " (pocketlm-only)" : "");
    if (tt.pocketlm_only) ++only[std::string(tt.name)];
    if (!f.no_tensors)
      std::printf("| %s | %s | %s | %zu |\n", t.name.c_str(), type.c_str(), t.shape_string().c_str(), t.nbytes);
    // An outlier branch's side tensors (quant/methods/outliers.h) add bytes, not parameters: their weights are
    // copies of columns the main matrix holds as zeros.
    if (is_outlier_tensor(t.name)) {
      side_bytes += t.nbytes;
      side_matrices += t.name.ends_with(".outlier_w") ? 1 : 0;
    } else {
      total_el += t.n_elements();
    }
    total_bytes += t.nbytes;
    by_type[type].first++;
    by_type[type].second += t.nbytes;
  }
  std::printf("\n## totals\n\n| type | tensors | bytes |\n|---|---:|---:|\n");
  for (const auto& [type, cnt] : by_type)
    std::printf("| %s | %d | %s |\n", type.c_str(), cnt.first, human_bytes(static_cast<double>(cnt.second)).c_str());
  std::printf("\n%lld parameters, %s of tensor data, %.3f bits per weight\n", static_cast<long long>(total_el),
              human_bytes(static_cast<double>(total_bytes)).c_str(),
              total_el ? 8.0 * static_cast<double>(total_bytes) / static_cast<double>(total_el) : 0.0);
  if (!only.empty()) {
    std::string names;
    for (const auto& [name, n] : only)
      names += (names.empty() ? "" : ", ") + name + " (" + std::to_string(n) + " tensors)";
    std::printf("pocketlm-only tensor types: %s; llama.cpp-based tools cannot read this file\n", names.c_str());
  }
  if (side_matrices > 0)
    std::printf(
        "outlier branch (%s = %lld): %d matrices, %s of side tensors (%.3f of the bits per weight); "
        "llama.cpp-based tools cannot read this file\n",
        kPocketlmOutliersKey,
        static_cast<long long>(
            g->has(kPocketlmOutliersKey) && g->get_int(kPocketlmOutliersKey) ? *g->get_int(kPocketlmOutliersKey) : 0),
        side_matrices, human_bytes(static_cast<double>(side_bytes)).c_str(),
        total_el ? 8.0 * static_cast<double>(side_bytes) / static_cast<double>(total_el) : 0.0);
  print_decode_layout(*g);
  if (f.n_ctx > 0) return print_kv_memory(*g, f);
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& root) {
  auto f = std::make_shared<InspectFlags>();
  CLI::App* app = root.add_subcommand("inspect", "print a GGUF file's metadata and tensors");
  app->add_option("model", f->model, "GGUF file")->required()->check(CLI::ExistingFile);
  app->add_flag("--no-tensors", f->no_tensors, "print only metadata and totals");
  app->add_option("--ctx", f->n_ctx, "also print the KV cache memory of a context of this many tokens")
      ->check(CLI::Range(1, 1 << 20));
  const auto types = CLI::IsMember({"f16", "f32", "q8", "q4", "q8_0", "q4_0"});
  app->add_option("--cache-type-k", f->cache_type_k, "KV cache type for K (-ctk), with --ctx")
      ->capture_default_str()
      ->check(types);
  app->add_option("--cache-type-v", f->cache_type_v, "KV cache type for V (-ctv), with --ctx")
      ->capture_default_str()
      ->check(types);
  app->add_option("--kv-block", f->kv_block, "tokens per KV block, with --ctx")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app->callback([f] {
    const int rc = inspect(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
