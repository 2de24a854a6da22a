#pragma once
// Readers for the checked-in vectors of tests/data/quant/ (format: scripts/gen-quant-vectors.py), and the
// float comparison the format tests share: bit-identical, except that any NaN matches any NaN.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "test_paths.h"

namespace pocketlm::test {

inline std::filesystem::path quant_vectors_dir() { return source_dir() / "tests" / "data" / "quant"; }

struct DequantVectors {
  uint32_t type = 0, oracle = 0, n_blocks = 0, block_size = 0, type_size = 0;
  std::vector<uint8_t> raw;     // n_blocks * type_size
  std::vector<float> expected;  // n_blocks * block_size
};

struct QuantizeVectors {
  uint32_t type = 0, oracle = 0;
  std::vector<float> input;
  std::vector<uint8_t> expected;
};

struct VecDotVectors {
  uint32_t weight_type = 0, act_type = 0, n = 0, n_rows = 0;
  std::vector<std::vector<uint8_t>> weights, activations;  // one row each
  std::vector<float> expected;                             // n_rows dots
};

namespace detail {
inline std::optional<std::vector<uint8_t>> read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return std::nullopt;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
inline uint32_t u32_at(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}
}  // namespace detail

// nullopt (with a gtest failure) if the file is missing or malformed.
inline std::optional<DequantVectors> load_dequant_vectors(const std::string& name) {
  const auto path = quant_vectors_dir() / ("dequant_" + name + ".bin");
  const auto bytes = detail::read_all(path);
  if (!bytes || bytes->size() < 28 || std::memcmp(bytes->data(), "PLQD", 4) != 0 || detail::u32_at(*bytes, 4) != 1) {
    ADD_FAILURE() << "missing or bad " << path << " (regenerate: python3 scripts/gen-quant-vectors.py)";
    return std::nullopt;
  }
  DequantVectors v;
  v.type = detail::u32_at(*bytes, 8);
  v.oracle = detail::u32_at(*bytes, 12);
  v.n_blocks = detail::u32_at(*bytes, 16);
  v.block_size = detail::u32_at(*bytes, 20);
  v.type_size = detail::u32_at(*bytes, 24);
  const size_t n_raw = size_t{v.n_blocks} * v.type_size, n_out = size_t{v.n_blocks} * v.block_size;
  if (bytes->size() != 28 + n_raw + 4 * n_out) {
    ADD_FAILURE() << path << ": size does not match its header";
    return std::nullopt;
  }
  v.raw.assign(bytes->begin() + 28, bytes->begin() + 28 + static_cast<std::ptrdiff_t>(n_raw));
  v.expected.resize(n_out);
  std::memcpy(v.expected.data(), bytes->data() + 28 + n_raw, 4 * n_out);
  return v;
}

inline std::optional<QuantizeVectors> load_quantize_vectors(const std::string& name) {
  const auto path = quant_vectors_dir() / ("quantize_" + name + ".bin");
  const auto bytes = detail::read_all(path);
  if (!bytes || bytes->size() < 24 || std::memcmp(bytes->data(), "PLQA", 4) != 0 || detail::u32_at(*bytes, 4) != 1) {
    ADD_FAILURE() << "missing or bad " << path << " (regenerate: python3 scripts/gen-quant-vectors.py)";
    return std::nullopt;
  }
  QuantizeVectors v;
  v.type = detail::u32_at(*bytes, 8);
  v.oracle = detail::u32_at(*bytes, 12);
  const size_t n_values = detail::u32_at(*bytes, 16), n_bytes = detail::u32_at(*bytes, 20);
  if (bytes->size() != 24 + 4 * n_values + n_bytes) {
    ADD_FAILURE() << path << ": size does not match its header";
    return std::nullopt;
  }
  v.input.resize(n_values);
  std::memcpy(v.input.data(), bytes->data() + 24, 4 * n_values);
  v.expected.assign(bytes->begin() + 24 + static_cast<std::ptrdiff_t>(4 * n_values), bytes->end());
  return v;
}

// The row sizes come from the caller (the type table) so that the file is checked against it.
inline std::optional<VecDotVectors> load_vecdot_vectors(const std::string& name,
                                                        size_t (*row_bytes)(uint32_t, int64_t)) {
  const auto path = quant_vectors_dir() / ("vecdot_" + name + ".bin");
  const auto bytes = detail::read_all(path);
  if (!bytes || bytes->size() < 24 || std::memcmp(bytes->data(), "PLQV", 4) != 0 || detail::u32_at(*bytes, 4) != 1) {
    ADD_FAILURE() << "missing or bad " << path << " (regenerate: python3 scripts/gen-quant-vectors.py)";
    return std::nullopt;
  }
  VecDotVectors v;
  v.weight_type = detail::u32_at(*bytes, 8);
  v.act_type = detail::u32_at(*bytes, 12);
  v.n = detail::u32_at(*bytes, 16);
  v.n_rows = detail::u32_at(*bytes, 20);
  const size_t wb = row_bytes(v.weight_type, v.n), ab = row_bytes(v.act_type, v.n);
  if (bytes->size() != 24 + v.n_rows * (wb + ab) + 4 * size_t{v.n_rows}) {
    ADD_FAILURE() << path << ": size does not match its header";
    return std::nullopt;
  }
  size_t off = 24;
  for (uint32_t r = 0; r < v.n_rows; ++r) {
    v.weights.emplace_back(bytes->begin() + static_cast<std::ptrdiff_t>(off),
                           bytes->begin() + static_cast<std::ptrdiff_t>(off + wb));
    off += wb;
    v.activations.emplace_back(bytes->begin() + static_cast<std::ptrdiff_t>(off),
                               bytes->begin() + static_cast<std::ptrdiff_t>(off + ab));
    off += ab;
  }
  v.expected.resize(v.n_rows);
  std::memcpy(v.expected.data(), bytes->data() + off, 4 * size_t{v.n_rows});
  return v;
}

// Bit-identical floats, or both NaN (payloads may differ between numpy and C).
inline bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

}  // namespace pocketlm::test
