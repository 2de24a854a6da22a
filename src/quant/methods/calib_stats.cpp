#include "quant/methods/calib_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gguf/reader.h"
#include "quant/imatrix_collect.h"
#include "runtime/session.h"
#include "util/atomic_file.h"
#include "util/splitmix64.h"
#include "util/thread_pool.h"

namespace pocketlm {

const InputStats* CalibStats::find(std::string_view weight) const {
  auto it = weight_input.find(std::string(weight));
  if (it == weight_input.end() || it->second < 0 || it->second >= static_cast<int64_t>(inputs.size())) return nullptr;
  return &inputs[static_cast<size_t>(it->second)];
}

Imatrix CalibStats::to_imatrix() const {
  Imatrix im;
  im.datasets = {data_name};
  for (const auto& [name, idx] : weight_input) {
    const InputStats& in = inputs[static_cast<size_t>(idx)];
    ImatrixEntry e;
    e.name = name;
    e.n_cols = in.n;
    e.sums.resize(in.sq_sum.size());
    for (size_t j = 0; j < in.sq_sum.size(); ++j) e.sums[j] = static_cast<float>(in.sq_sum[j]);
    e.counts = {static_cast<float>(in.count)};
    im.entries.push_back(std::move(e));
  }
  std::sort(im.entries.begin(), im.entries.end(),
            [](const ImatrixEntry& a, const ImatrixEntry& b) { return a.name < b.name; });
  return im;
}

CalibCollector::CalibCollector(CalibCollectOptions opts) : opts_(opts) {}

void CalibCollector::observe(const GgufTensor& w, int64_t row_begin, int64_t, const float* x, int64_t n_tokens) {
  if (row_begin != 0 || n_tokens < opts_.min_tokens || !problem_.empty()) return;
  if (!w.name.starts_with("blk.")) return;
  const int64_t k = w.ne[0];
  int64_t input = -1;
  if (x == last_x_ && n_tokens == last_tokens_ && last_input_ >= 0 &&
      inputs_[static_cast<size_t>(last_input_)].n == k) {
    input = last_input_;  // another weight of the same matmul_many: the same input, counted once
  } else {
    auto it = weight_input_.find(w.name);
    if (it != weight_input_.end()) {
      input = it->second;
    } else {
      InputStats s;
      s.key = w.name;
      s.n = k;
      s.abs_sum.assign(static_cast<size_t>(k), 0.0);
      s.abs_max.assign(static_cast<size_t>(k), 0.0f);
      s.sq_sum.assign(static_cast<size_t>(k), 0.0);
      if (opts_.gram) s.gram.assign(static_cast<size_t>(k * k), 0.0f);
      input = static_cast<int64_t>(inputs_.size());
      inputs_.push_back(std::move(s));
    }
    InputStats& s = inputs_[static_cast<size_t>(input)];
    if (s.n != k) {
      problem_ = "the weight " + w.name + " was seen with rows of " + std::to_string(s.n) + " and of " +
                 std::to_string(k) + " values";
      return;
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* row = x + t * k;
      for (int64_t j = 0; j < k; ++j) {
        const float a = std::fabs(row[j]);
        if (!std::isfinite(a)) {
          problem_ = "non-finite activations reach " + w.name + " (input column " + std::to_string(j) +
                     "): the model overflows on this text";
          return;
        }
        s.abs_sum[static_cast<size_t>(j)] += a;
        s.sq_sum[static_cast<size_t>(j)] += static_cast<double>(a) * a;
        s.abs_max[static_cast<size_t>(j)] = std::max(s.abs_max[static_cast<size_t>(j)], a);
      }
    }
    s.count += n_tokens;
    if (opts_.gram) pending_.push_back({input, n_tokens, std::vector<float>(x, x + n_tokens * k)});
  }
  auto [it, inserted] = weight_input_.try_emplace(w.name, input);
  if (!inserted && it->second != input) {
    problem_ = "the weight " + w.name + " read two different inputs";
    return;
  }
  last_x_ = x;
  last_tokens_ = n_tokens;
  last_input_ = input;
}

void CalibCollector::flush(ThreadPool& pool) {
  last_x_ = nullptr;
  last_input_ = -1;
  if (pending_.empty()) return;
  // Work items: (pending entry, band of Gram rows). Each adds x_i * x_j for j >= i (the upper triangle;
  // result() mirrors it): rows near the top are longer, so bands are cut by equal work, not equal rows.
  struct Item {
    size_t p;
    int64_t r0, r1;
  };
  std::vector<Item> items;
  for (size_t p = 0; p < pending_.size(); ++p) {
    const int64_t n = inputs_[static_cast<size_t>(pending_[p].input)].n;
    const double total = 0.5 * static_cast<double>(n) * static_cast<double>(n + 1);
    const int bands = std::max(1, std::min<int>(static_cast<int>(n / 16), 4 * pool.size()));
    int64_t r = 0;
    for (int b = 1; b <= bands && r < n; ++b) {
      // rows [0, e) hold total - (n - e)(n - e + 1)/2 work: solve for the band's end.
      const double left = total * (1.0 - static_cast<double>(b) / bands);
      int64_t e = n - static_cast<int64_t>(std::floor((std::sqrt(8.0 * left + 1.0) - 1.0) / 2.0));
      e = b == bands ? n : std::clamp<int64_t>(e, r + 1, n);
      items.push_back({p, r, e});
      r = e;
    }
  }
  pool.parallel_for(static_cast<int64_t>(items.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const Item& it = items[static_cast<size_t>(i)];
      const Pending& pd = pending_[it.p];
      InputStats& s = inputs_[static_cast<size_t>(pd.input)];
      const int64_t n = s.n;
      // 16 Gram rows at a time stay in cache while every token passes over them.
      for (int64_t rb = it.r0; rb < it.r1; rb += 16) {
        const int64_t re = std::min(it.r1, rb + 16);
        for (int64_t t = 0; t < pd.n_tokens; ++t) {
          const float* x = pd.x.data() + t * n;
          for (int64_t r = rb; r < re; ++r) {
            const float xr = x[r];
            if (xr == 0.0f) continue;
            float* g = s.gram.data() + r * n;
            for (int64_t j = r; j < n; ++j) g[j] += xr * x[j];
          }
        }
      }
    }
  });
  pending_.clear();
}

CalibStats CalibCollector::result() const {
  CalibStats s;
  s.inputs = inputs_;
  s.weight_input = weight_input_;
  for (InputStats& in : s.inputs) {
    s.n_tokens = std::max(s.n_tokens, in.count);
    if (in.gram.empty()) continue;
    for (int64_t i = 0; i < in.n; ++i)
      for (int64_t j = 0; j < i; ++j)
        in.gram[static_cast<size_t>(i * in.n + j)] = in.gram[static_cast<size_t>(j * in.n + i)];
  }
  return s;
}

Status collect_calib_stats(Session& session, std::span<const std::vector<int32_t>> sequences, int64_t n_batch,
                           CalibCollector& collector, ThreadPool& pool,
                           const std::function<void(int64_t)>& tokens_done) {
  return for_each_calibration_piece(session, sequences, n_batch, [&](std::span<const int32_t> tokens) -> Status {
    {
      const ScopedMatmulObserver watch(collector);
      auto r = session.eval(tokens);
      if (!r) return r.error();
    }
    if (!collector.problem().empty()) return Error(collector.problem());
    collector.flush(pool);
    if (tokens_done) tokens_done(static_cast<int64_t>(tokens.size()));
    return Status::Ok();
  });
}

namespace {

std::string hex16(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

struct Hasher {
  uint64_t h = 0x6A09E667F3BCC908ull;
  void add(uint64_t v) { h = splitmix64_mix(h ^ splitmix64_mix(v + 0x9E3779B97F4A7C15ull)); }
  void add(std::string_view s) {
    add(s.size());
    uint64_t word = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      word = (word << 8) | static_cast<unsigned char>(s[i]);
      if (i % 8 == 7) add(word), word = 0;
    }
    add(word);
  }
  void add_bytes(const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t v;
      std::memcpy(&v, p + i, 8);
      add(v);
    }
  }
};

}  // namespace

std::string model_fingerprint(const GgufFile& model) {
  Hasher h;
  h.add(static_cast<uint64_t>(model.tensors().size()));
  for (const GgufTensor& t : model.tensors()) {
    h.add(t.name);
    h.add(static_cast<uint64_t>(t.type));
    for (int64_t d : t.ne) h.add(static_cast<uint64_t>(d));
    // A sample of the data: the first and last 1 KiB and 1 KiB in the middle.
    const size_t k = std::min<size_t>(1024, t.nbytes);
    h.add_bytes(t.data, k);
    h.add_bytes(t.data + (t.nbytes - k) / 2, k);
    h.add_bytes(t.data + t.nbytes - k, k);
  }
  return hex16(h.h);
}

std::string tokens_fingerprint(std::span<const std::vector<int32_t>> sequences) {
  Hasher h;
  h.add(static_cast<uint64_t>(sequences.size()));
  for (const auto& s : sequences) {
    h.add(static_cast<uint64_t>(s.size()));
    for (int32_t t : s) h.add(static_cast<uint64_t>(static_cast<uint32_t>(t)));
  }
  return hex16(h.h);
}

namespace {

constexpr char kMagic[8] = {'P', 'L', 'M', 'C', 'A', 'L', 'I', 'B'};
constexpr uint32_t kVersion = 1;

class Out {
 public:
  explicit Out(AtomicFile& f) : f_(f) {}
  Status bytes(const void* p, size_t n) { return f_.write(p, n); }
  template <typename T>
  Status pod(T v) {
    return bytes(&v, sizeof v);
  }
  Status str(const std::string& s) {
    PLM_CHECK(pod<uint32_t>(static_cast<uint32_t>(s.size())));
    return bytes(s.data(), s.size());
  }

 private:
  AtomicFile& f_;
};

class In {
 public:
  In(std::span<const uint8_t> b, const std::string& name) : b_(b), name_(name) {}
  Error bad(const std::string& what) const {
    return Error(name_ + ": not a valid calibration cache: " + what + " at byte " + std::to_string(pos_));
  }
  Status bytes(void* p, size_t n, const char* what) {
    if (n > b_.size() - pos_) return bad(std::string("truncated ") + what);
    if (n) std::memcpy(p, b_.data() + pos_, n);
    pos_ += n;
    return Status::Ok();
  }
  template <typename T>
  Status pod(T& v, const char* what) {
    return bytes(&v, sizeof v, what);
  }
  Status str(std::string& s, const char* what) {
    uint32_t n = 0;
    PLM_CHECK(pod(n, what));
    if (n > b_.size() - pos_) return bad(std::string("truncated ") + what);
    s.assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return Status::Ok();
  }
  size_t left() const { return b_.size() - pos_; }

 private:
  std::span<const uint8_t> b_;
  std::string name_;
  size_t pos_ = 0;
};

}  // namespace

Status write_calib_stats(const CalibStats& s, const std::string& path) {
  PLM_TRY(AtomicFile f, AtomicFile::create(path));
  Out o(f);
  PLM_CHECK(o.bytes(kMagic, sizeof kMagic));
  PLM_CHECK(o.pod(kVersion));
  PLM_CHECK(o.str(s.model_id));
  PLM_CHECK(o.str(s.data_id));
  PLM_CHECK(o.str(s.data_name));
  PLM_CHECK(o.pod<int64_t>(s.n_tokens));
  PLM_CHECK(o.pod<uint32_t>(static_cast<uint32_t>(s.inputs.size())));
  std::vector<float> tri;
  for (const InputStats& in : s.inputs) {
    PLM_CHECK(o.str(in.key));
    PLM_CHECK(o.pod<int64_t>(in.n));
    PLM_CHECK(o.pod<int64_t>(in.count));
    PLM_CHECK(o.pod<uint8_t>(in.gram.empty() ? 0 : 1));
    PLM_CHECK(o.bytes(in.abs_sum.data(), in.abs_sum.size() * sizeof(double)));
    PLM_CHECK(o.bytes(in.abs_max.data(), in.abs_max.size() * sizeof(float)));
    PLM_CHECK(o.bytes(in.sq_sum.data(), in.sq_sum.size() * sizeof(double)));
    if (!in.gram.empty()) {
      tri.clear();
      for (int64_t i = 0; i < in.n; ++i)
        tri.insert(tri.end(), in.gram.begin() + i * in.n + i, in.gram.begin() + (i + 1) * in.n);
      PLM_CHECK(o.bytes(tri.data(), tri.size() * sizeof(float)));
    }
  }
  PLM_CHECK(o.pod<uint32_t>(static_cast<uint32_t>(s.weight_input.size())));
  for (const auto& [name, idx] : s.weight_input) {
    PLM_CHECK(o.str(name));
    PLM_CHECK(o.pod<int64_t>(idx));
  }
  return f.commit();
}

Expected<CalibStats> parse_calib_stats(std::span<const uint8_t> bytes, const std::string& name) {
  In in(bytes, name);
  char magic[8];
  PLM_CHECK(in.bytes(magic, sizeof magic, "magic"));
  if (std::memcmp(magic, kMagic, sizeof magic) != 0) return in.bad("no PLMCALIB magic");
  uint32_t version = 0;
  PLM_CHECK(in.pod(version, "version"));
  if (version != kVersion)
    return in.bad("version " + std::to_string(version) + " (this pocketlm reads " + std::to_string(kVersion) + ")");
  CalibStats s;
  PLM_CHECK(in.str(s.model_id, "model id"));
  PLM_CHECK(in.str(s.data_id, "data id"));
  PLM_CHECK(in.str(s.data_name, "data name"));
  PLM_CHECK(in.pod(s.n_tokens, "token count"));
  uint32_t n_inputs = 0;
  PLM_CHECK(in.pod(n_inputs, "input count"));
  for (uint32_t i = 0; i < n_inputs; ++i) {
    InputStats st;
    PLM_CHECK(in.str(st.key, "input name"));
    PLM_CHECK(in.pod(st.n, "input width"));
    PLM_CHECK(in.pod(st.count, "input token count"));
    uint8_t has_gram = 0;
    PLM_CHECK(in.pod(has_gram, "gram flag"));
    if (st.n <= 0 || st.count < 0 || has_gram > 1) return in.bad("input '" + st.key + "': bad width, count or flag");
    const auto n = static_cast<uint64_t>(st.n);
    const uint64_t need = n * 20 + (has_gram ? n * (n + 1) / 2 * 4 : 0);
    if (n > (uint64_t{1} << 20) || need > in.left()) return in.bad("input '" + st.key + "': truncated statistics");
    st.abs_sum.resize(n);
    st.abs_max.resize(n);
    st.sq_sum.resize(n);
    PLM_CHECK(in.bytes(st.abs_sum.data(), n * sizeof(double), "sums"));
    PLM_CHECK(in.bytes(st.abs_max.data(), n * sizeof(float), "maxima"));
    PLM_CHECK(in.bytes(st.sq_sum.data(), n * sizeof(double), "squares"));
    if (has_gram) {
      st.gram.assign(n * n, 0.0f);
      for (uint64_t r = 0; r < n; ++r) PLM_CHECK(in.bytes(st.gram.data() + r * n + r, (n - r) * sizeof(float), "gram"));
      for (uint64_t r = 0; r < n; ++r)
        for (uint64_t c = 0; c < r; ++c) st.gram[r * n + c] = st.gram[c * n + r];
    }
    s.inputs.push_back(std::move(st));
  }
  uint32_t n_weights = 0;
  PLM_CHECK(in.pod(n_weights, "weight count"));
  for (uint32_t i = 0; i < n_weights; ++i) {
    std::string w;
    int64_t idx = 0;
    PLM_CHECK(in.str(w, "weight name"));
    PLM_CHECK(in.pod(idx, "weight input"));
    if (idx < 0 || idx >= static_cast<int64_t>(s.inputs.size()))
      return in.bad("weight '" + w + "' names input " + std::to_string(idx));
    s.weight_input[w] = idx;
  }
  if (in.left() != 0) return in.bad(std::to_string(in.left()) + " trailing bytes");
  return s;
}

Expected<CalibStats> read_calib_stats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(path + ": cannot open the calibration cache");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_calib_stats(bytes, path);
}

Status check_calib_stats(const CalibStats& s, const std::string& model_id, const std::string& data_id,
                         const std::string& path) {
  if (s.model_id != model_id)
    return Error(path + ": the calibration cache was made from another model (model id " + s.model_id +
                 ", this model is " + model_id + "); delete it or give another --calib-cache");
  if (s.data_id != data_id)
    return Error(path + ": the calibration cache was made from other calibration data (" + s.data_name + ", id " +
                 s.data_id + "; this data is " + data_id + "); delete it or give another --calib-cache");
  return Status::Ok();
}

std::string default_calib_cache_path(const std::string& model_id, const std::string& data_id) {
  std::string dir;
  if (const char* d = std::getenv("POCKETLM_CACHE_DIR"); d && *d)
    dir = d;
  else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    dir = std::string(x) + "/pocketlm";
  else if (const char* h = std::getenv("HOME"); h && *h)
    dir = std::string(h) + "/.cache/pocketlm";
  else
    dir = ".pocketlm-cache";
  return dir + "/calib/" + model_id + "-" + data_id + ".calib";
}

}  // namespace pocketlm
