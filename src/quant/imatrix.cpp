#include "quant/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "util/atomic_file.h"
#include "util/mapped_file.h"

namespace pocketlm {

std::vector<float> ImatrixEntry::importance(int64_t mat) const {
  std::vector<float> out(static_cast<size_t>(n_cols), 1.0f);
  if (mat < 0 || mat >= n_mat) return out;
  const float c = counts[static_cast<size_t>(mat)];
  if (!(c > 0)) return out;
  for (int64_t j = 0; j < n_cols; ++j) out[static_cast<size_t>(j)] = sums[static_cast<size_t>(mat * n_cols + j)] / c;
  return out;
}

const ImatrixEntry* Imatrix::find(std::string_view name) const {
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [](const ImatrixEntry& e, std::string_view n) { return e.name < n; });
  return it != entries.end() && it->name == name ? &*it : nullptr;
}

namespace {

void sort_entries(Imatrix& im) {
  std::sort(im.entries.begin(), im.entries.end(),
            [](const ImatrixEntry& a, const ImatrixEntry& b) { return a.name < b.name; });
}

Status check_values(const std::string& file, const std::string& what, const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]) || v[i] < 0)
      return Error(file + ": " + what + "[" + std::to_string(i) + "] is " + std::to_string(v[i]) +
                   " (sums of squares and counts are finite and >= 0)");
  return Status::Ok();
}

std::vector<float> tensor_floats(const GgufTensor& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  if (!v.empty()) std::memcpy(v.data(), t.data, v.size() * sizeof(float));
  return v;
}

Expected<Imatrix> parse_gguf(std::shared_ptr<MappedFile> file, const std::string& name) {
  PLM_TRY(GgufFile g, GgufFile::parse(std::move(file)));
  Imatrix im;
  PLM_TRY(std::string type, g.get_string_or("general.type", "imatrix"));
  if (type != "imatrix")
    return Error(name + ": general.type is '" + type + "', not 'imatrix' (is this a model rather than an imatrix?)");
  if (g.has("imatrix.datasets")) {
    PLM_TRY(im.datasets, g.get_string_array("imatrix.datasets"));
  }
  PLM_TRY(im.chunk_count, g.get_int_or("imatrix.chunk_count", 0));
  PLM_TRY(im.chunk_size, g.get_int_or("imatrix.chunk_size", 0));
  std::map<std::string, std::pair<const GgufTensor*, const GgufTensor*>> pairs;
  for (const GgufTensor& t : g.tensors()) {
    const std::string& tn = t.name;
    auto ends_with = [&](std::string_view s) {
      return tn.size() > s.size() && tn.compare(tn.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with(".in_sum2"))
      pairs[tn.substr(0, tn.size() - 8)].first = &t;
    else if (ends_with(".counts"))
      pairs[tn.substr(0, tn.size() - 7)].second = &t;
    else
      return Error(name + ": tensor '" + tn + "' is neither <weight>.in_sum2 nor <weight>.counts");
  }
  if (pairs.empty()) return Error(name + ": no imatrix entries (no <weight>.in_sum2 tensors)");
  for (const auto& [wname, p] : pairs) {
    if (!p.first || !p.second)
      return Error(name + ": entry '" + wname + "' has " +
                   (p.first ? "in_sum2 but no counts" : "counts but no in_sum2"));
    if (p.first->type != GgmlType::F32 || p.second->type != GgmlType::F32)
      return Error(name + ": entry '" + wname + "': in_sum2 and counts must be F32");
    ImatrixEntry e;
    e.name = wname;
    e.n_cols = p.first->ne[0];
    e.n_mat = p.first->n_elements() / std::max<int64_t>(1, e.n_cols);
    if (p.second->n_elements() != e.n_mat)
      return Error(name + ": entry '" + wname + "': in_sum2 " + p.first->shape_string() + " holds " +
                   std::to_string(e.n_mat) + " matrices but counts " + p.second->shape_string() + " holds " +
                   std::to_string(p.second->n_elements()));
    e.sums = tensor_floats(*p.first);
    e.counts = tensor_floats(*p.second);
    PLM_CHECK(check_values(name, wname + ".in_sum2", e.sums));
    PLM_CHECK(check_values(name, wname + ".counts", e.counts));
    im.entries.push_back(std::move(e));
  }
  sort_entries(im);
  return im;
}

// Bounds-checked little-endian reader over a .dat file.
class DatCursor {
 public:
  DatCursor(std::span<const uint8_t> b, const std::string& name) : b_(b), name_(name) {}
  size_t offset() const { return off_; }
  size_t left() const { return b_.size() - off_; }
  Expected<int32_t> i32(const char* field) {
    if (left() < 4) return err(field, "file ends inside it");
    int32_t v;
    std::memcpy(&v, b_.data() + off_, 4);
    off_ += 4;
    return v;
  }
  Expected<std::string> str(int32_t len, const char* field) {
    if (len < 0 || static_cast<size_t>(len) > left())
      return err(field, "length " + std::to_string(len) + " exceeds the " + std::to_string(left()) + " bytes left");
    std::string s(reinterpret_cast<const char*>(b_.data() + off_), static_cast<size_t>(len));
    off_ += static_cast<size_t>(len);
    return s;
  }
  Expected<std::vector<float>> floats(int32_t n, const char* field) {
    if (n < 0 || static_cast<size_t>(n) > left() / 4)
      return err(field, std::to_string(n) + " floats do not fit in the " + std::to_string(left()) + " bytes left");
    std::vector<float> v(static_cast<size_t>(n));
    if (n > 0) std::memcpy(v.data(), b_.data() + off_, static_cast<size_t>(n) * 4);
    off_ += static_cast<size_t>(n) * 4;
    return v;
  }
  Error err(const std::string& field, const std::string& problem) const {
    return Error(name_ + ": " + field + " at byte " + std::to_string(off_) + ": " + problem);
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& name_;
  size_t off_ = 0;
};

Expected<Imatrix> parse_dat(std::span<const uint8_t> bytes, const std::string& name, int64_t chunk_size) {
  DatCursor c(bytes, name);
  PLM_TRY(int32_t n_entries, c.i32("entry count"));
  if (n_entries <= 0) return c.err("entry count", std::to_string(n_entries) + " entries (not an imatrix .dat file?)");
  // Each entry needs at least 12 bytes: a bound on the count before anything is allocated.
  if (static_cast<size_t>(n_entries) > c.left() / 12)
    return c.err("entry count",
                 std::to_string(n_entries) + " entries cannot fit in " + std::to_string(c.left()) + " bytes");
  Imatrix im;
  im.from_legacy = true;
  im.chunk_size = chunk_size;
  std::set<std::string> seen;
  for (int32_t i = 0; i < n_entries; ++i) {
    const std::string field = "entry " + std::to_string(i);
    PLM_TRY(int32_t len, c.i32((field + " name length").c_str()));
    if (len <= 0) return c.err(field + " name length", std::to_string(len) + " (names are not empty)");
    PLM_TRY(std::string ename, c.str(len, (field + " name").c_str()));
    PLM_TRY(int32_t ncall, c.i32((field + " call count").c_str()));
    PLM_TRY(int32_t nval, c.i32((field + " value count").c_str()));
    if (ncall < 0) return c.err(field + " ('" + ename + "') call count", std::to_string(ncall) + " is negative");
    if (nval <= 0) return c.err(field + " ('" + ename + "') value count", std::to_string(nval) + " (must be positive)");
    PLM_TRY(std::vector<float> values, c.floats(nval, (field + " ('" + ename + "') values").c_str()));
    PLM_CHECK(check_values(name, ename + " values", values));
    ImatrixEntry e;
    e.name = std::move(ename);
    e.n_cols = nval;
    e.n_mat = 1;
    // value = sum / count * ncall: back to raw sums and counts with count = ncall * chunk_size.
    e.sums.resize(values.size());
    for (size_t j = 0; j < values.size(); ++j) e.sums[j] = values[j] * static_cast<float>(chunk_size);
    e.counts = {static_cast<float>(ncall) * static_cast<float>(chunk_size)};
    if (!seen.insert(e.name).second) return c.err(field + " name", "'" + e.name + "' appears twice");
    im.entries.push_back(std::move(e));
  }
  sort_entries(im);
  // Optional trailer: chunk count, then the dataset's name.
  if (c.left() >= 4) {
    PLM_TRY(int32_t chunks, c.i32("chunk count"));
    im.chunk_count = std::max(0, chunks);
    if (c.left() >= 4) {
      PLM_TRY(int32_t len, c.i32("dataset name length"));
      PLM_TRY(std::string ds, c.str(len, "dataset name"));
      if (!ds.empty()) im.datasets.push_back(std::move(ds));
    }
  }
  if (c.left() != 0) return c.err("end of file", std::to_string(c.left()) + " unexpected trailing bytes");
  return im;
}

bool is_gguf(std::span<const uint8_t> bytes) { return bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0; }

}  // namespace

Expected<Imatrix> parse_imatrix(std::span<const uint8_t> bytes, const std::string& name, int64_t legacy_chunk_size) {
  if (is_gguf(bytes)) return parse_gguf(MappedFile::from_bytes(bytes, name), name);
  return parse_dat(bytes, name, legacy_chunk_size);
}

Expected<Imatrix> read_imatrix(const std::string& path, int64_t legacy_chunk_size) {
  PLM_TRY(std::shared_ptr<MappedFile> f, MappedFile::open(path));
  const std::span<const uint8_t> bytes(f->data(), f->size());
  if (is_gguf(bytes)) return parse_gguf(f, path);
  return parse_dat(bytes, path, legacy_chunk_size);
}

Status write_imatrix_gguf(const Imatrix& im, const std::string& path) {
  GgufWriter w;
  w.set("general.type", GgufValue::of_string("imatrix"));
  w.set("imatrix.datasets", GgufValue::of_strings(im.datasets));
  w.set("imatrix.chunk_count", GgufValue::of_u32(static_cast<uint32_t>(std::max<int64_t>(0, im.chunk_count))));
  w.set("imatrix.chunk_size", GgufValue::of_u32(static_cast<uint32_t>(std::max<int64_t>(0, im.chunk_size))));
  for (const ImatrixEntry& e : im.entries) {
    if (static_cast<int64_t>(e.sums.size()) != e.n_cols * e.n_mat || static_cast<int64_t>(e.counts.size()) != e.n_mat)
      return Error(path + ": entry '" + e.name + "' has inconsistent sizes");
    PLM_CHECK(w.add_tensor(e.name + ".in_sum2", GgmlType::F32, {e.n_cols, e.n_mat},
                           {reinterpret_cast<const uint8_t*>(e.sums.data()), e.sums.size() * sizeof(float)}));
    PLM_CHECK(w.add_tensor(e.name + ".counts", GgmlType::F32, {1, e.n_mat},
                           {reinterpret_cast<const uint8_t*>(e.counts.data()), e.counts.size() * sizeof(float)}));
  }
  return w.write(path);
}

Status write_imatrix_dat(const Imatrix& im, const std::string& path) {
  std::vector<uint8_t> out;
  auto put_i32 = [&](int64_t v) {
    const int32_t x = static_cast<int32_t>(v);
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    out.insert(out.end(), p, p + 4);
  };
  const int64_t chunk = im.chunk_size > 0 ? im.chunk_size : kImatrixDefaultChunkSize;
  int64_t n_written = 0;
  for (const ImatrixEntry& e : im.entries) n_written += e.counts.empty() ? 0 : 1;
  put_i32(n_written);
  for (const ImatrixEntry& e : im.entries) {
    if (e.counts.empty()) continue;
    put_i32(static_cast<int64_t>(e.name.size()));
    out.insert(out.end(), e.name.begin(), e.name.end());
    const float max_count = *std::max_element(e.counts.begin(), e.counts.end());
    const int64_t ncall = (static_cast<int64_t>(max_count) + chunk - 1) / chunk;  // as llama-imatrix: rounded up
    put_i32(ncall);
    put_i32(e.n_cols * e.n_mat);
    for (int64_t m = 0; m < e.n_mat; ++m)
      for (int64_t j = 0; j < e.n_cols; ++j) {
        float count = e.counts[static_cast<size_t>(m)];
        float value = e.sums[static_cast<size_t>(m * e.n_cols + j)];
        if (count == 0) value = count = 1;  // a matrix without data: neutral 1, as llama-imatrix writes it
        const float v = value / count * static_cast<float>(ncall);
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        out.insert(out.end(), p, p + 4);
      }
  }
  put_i32(im.chunk_count);
  const std::string ds = im.datasets.empty() ? std::string() : im.datasets.back();
  put_i32(static_cast<int64_t>(ds.size()));
  out.insert(out.end(), ds.begin(), ds.end());
  PLM_TRY(AtomicFile f, AtomicFile::create(path));
  PLM_CHECK(f.write(out.data(), out.size()));
  return f.commit();
}

Expected<Imatrix> merge_imatrices(const std::vector<Imatrix>& inputs, const std::vector<std::string>& names) {
  if (inputs.empty()) return Error("imatrix merge: no inputs");
  auto label = [&](size_t i) { return i < names.size() ? names[i] : "input " + std::to_string(i + 1); };
  Imatrix out;
  std::map<std::string, size_t> where;  // entry name -> input that first had it (for errors)
  std::map<std::string, size_t> index;  // entry name -> position in out.entries
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Imatrix& in = inputs[i];
    out.datasets.insert(out.datasets.end(), in.datasets.begin(), in.datasets.end());
    out.chunk_count += in.chunk_count;
    if (out.chunk_size == 0) out.chunk_size = in.chunk_size;
    for (const ImatrixEntry& e : in.entries) {
      const auto it = index.find(e.name);
      if (it == index.end()) {
        index[e.name] = out.entries.size();
        out.entries.push_back(e);
        where[e.name] = i;
        continue;
      }
      ImatrixEntry* have = &out.entries[it->second];
      if (have->n_cols != e.n_cols || have->n_mat != e.n_mat)
        return Error("imatrix merge: entry '" + e.name + "' is " + std::to_string(have->n_cols) + " columns x " +
                     std::to_string(have->n_mat) + " in " + label(where[e.name]) + " but " + std::to_string(e.n_cols) +
                     " x " + std::to_string(e.n_mat) + " in " + label(i) + " (imatrices of different models?)");
      for (size_t j = 0; j < e.sums.size(); ++j) have->sums[j] += e.sums[j];
      for (size_t j = 0; j < e.counts.size(); ++j) have->counts[j] += e.counts[j];
    }
  }
  sort_entries(out);
  return out;
}

Status validate_imatrix(const Imatrix& im, const GgufFile& model) {
  for (const ImatrixEntry& e : im.entries) {
    const GgufTensor* t = model.tensor(e.name);
    if (!t)
      return Error("imatrix entry '" + e.name + "' names no tensor of " + model.path() +
                   " (an imatrix for another model?)");
    const int64_t n_mat = t->n_dims >= 3 ? t->ne[2] : 1;
    if (t->ne[0] != e.n_cols || (n_mat != e.n_mat && !(e.n_mat == 1 && e.n_cols == t->ne[0])))
      return Error("imatrix entry '" + e.name + "' has " + std::to_string(e.n_cols) + " columns x " +
                   std::to_string(e.n_mat) + " matrices but " + model.path() + "'s tensor is " + t->shape_string() +
                   " (an imatrix for another model?)");
  }
  return Status::Ok();
}

std::vector<ImatrixTensorStats> imatrix_statistics(const Imatrix& im) {
  std::vector<ImatrixTensorStats> out;
  std::vector<std::vector<double>> means;
  for (const ImatrixEntry& e : im.entries) {
    std::vector<double> act;
    for (int64_t m = 0; m < e.n_mat; ++m) {
      const double c = e.counts[static_cast<size_t>(m)];
      if (!(c > 0)) continue;
      for (int64_t j = 0; j < e.n_cols; ++j) act.push_back(e.sums[static_cast<size_t>(m * e.n_cols + j)] / c);
    }
    ImatrixTensorStats s;
    s.name = e.name;
    s.n = static_cast<int64_t>(act.size());
    if (!act.empty()) {
      double sum = 0, sq = 0;
      s.min = act[0];
      s.max = act[0];
      for (double a : act) {
        sum += a;
        sq += a * a;
        s.min = std::min(s.min, a);
        s.max = std::max(s.max, a);
        s.zero_columns += a <= 1e-5 ? 1 : 0;
      }
      s.sum = sum;
      s.mean = sum / static_cast<double>(act.size());
      s.stddev = std::sqrt(std::max(0.0, sq / static_cast<double>(act.size()) - s.mean * s.mean));
      s.cv = s.mean > 0 ? s.stddev / s.mean : 0.0;
      s.active = 1.0 - static_cast<double>(s.zero_columns) / static_cast<double>(act.size());
      if (sum > 0)
        for (double a : act)
          if (const double p = a / sum; p > 0) s.entropy -= p * std::log2(p);
      if (s.stddev > 0) {
        int64_t z = 0;
        for (double a : act) z += (a - s.mean) / s.stddev > 1 ? 1 : 0;
        s.zd = static_cast<double>(z) / static_cast<double>(act.size());
      }
    }
    out.push_back(s);
    means.push_back(std::move(act));
  }
  // Cosine similarity of each blk.N tensor with the same tensor of blk.N-1.
  static const std::regex kBlock(R"(blk\.(\d+)\.)");
  for (size_t i = 0; i < out.size(); ++i) {
    std::smatch m;
    if (!std::regex_search(out[i].name, m, kBlock)) continue;
    const int blk = std::stoi(m[1]);
    if (blk == 0) continue;
    std::string prev = out[i].name;
    prev.replace(static_cast<size_t>(m.position(1)), static_cast<size_t>(m.length(1)), std::to_string(blk - 1));
    for (size_t k = 0; k < out.size(); ++k) {
      if (out[k].name != prev || means[k].size() != means[i].size() || means[i].empty()) continue;
      double dot = 0, a2 = 0, b2 = 0;
      for (size_t j = 0; j < means[i].size(); ++j) {
        dot += means[i][j] * means[k][j];
        a2 += means[i][j] * means[i][j];
        b2 += means[k][j] * means[k][j];
      }
      if (a2 > 0 && b2 > 0) {
        out[i].cossim = dot / std::sqrt(a2 * b2);
        out[i].has_cossim = true;
      }
    }
  }
  return out;
}

std::string format_imatrix_statistics(const Imatrix& im, const std::vector<ImatrixTensorStats>& stats) {
  std::ostringstream os;
  os << "imatrix: " << im.entries.size() << " entries, " << im.chunk_count << " chunks of " << im.chunk_size
     << " tokens";
  if (!im.datasets.empty()) {
    os << ", datasets:";
    for (const auto& d : im.datasets) os << " " << d;
  }
  os << "\n";
  char line[512];
  std::snprintf(line, sizeof(line), "%-36s %12s %10s %10s %10s %10s %7s %8s %6s %8s %7s %7s\n", "tensor", "sum(act^2)",
                "min", "max", "mean", "stddev", "cv", "active%", "zero", "entropy", "zd%", "cossim");
  os << line;
  for (const auto& s : stats) {
    std::snprintf(line, sizeof(line), "%-36s %12.4g %10.4g %10.4g %10.4g %10.4g %7.3f %8.2f %6lld %8.3f %7.2f %7s\n",
                  s.name.c_str(), s.sum, s.min, s.max, s.mean, s.stddev, s.cv, 100 * s.active,
                  static_cast<long long>(s.zero_columns), s.entropy, 100 * s.zd,
                  s.has_cossim ? std::to_string(s.cossim).substr(0, 6).c_str() : "-");
    os << line;
  }
  return os.str();
}

}  // namespace pocketlm
