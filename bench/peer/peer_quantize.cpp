// pocketlm-peer-quantize: llama.cpp's own quantizer (ggml_quantize_chunk from libggml-base) on rows of floats
// from a file, as an oracle for pocketlm's encoders (tests/quant/encode_peer_test.cpp). One call, one thread.
//   pocketlm-peer-quantize TYPE_ID N_PER_ROW ROWS.f32 OUT.bin [IMPORTANCE.f32]
// ROWS.f32 holds n_rows * N_PER_ROW little-endian float32; IMPORTANCE.f32 N_PER_ROW of them. Writes the encoded
// rows to OUT.bin and prints {"bytes": B, "seconds": S} (S: wall time of the quantize call alone).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml.h"

namespace {
std::vector<float> read_floats(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot open ") + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() % sizeof(float) != 0) throw std::runtime_error(std::string(path) + ": not whole float32s");
  std::vector<float> v(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(v.data()));
  return v;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 6) {
    std::cerr << "usage: pocketlm-peer-quantize TYPE_ID N_PER_ROW ROWS.f32 OUT.bin [IMPORTANCE.f32]\n";
    return 2;
  }
  try {
    const auto type = static_cast<ggml_type>(std::stoi(argv[1]));
    const int64_t n_per_row = std::stoll(argv[2]);
    const std::vector<float> rows = read_floats(argv[3]);
    std::vector<float> importance;
    if (argc == 6) importance = read_floats(argv[5]);
    if (n_per_row <= 0 || rows.size() % static_cast<size_t>(n_per_row) != 0)
      throw std::runtime_error("the rows file does not hold whole rows");
    if (!importance.empty() && importance.size() != static_cast<size_t>(n_per_row))
      throw std::runtime_error("the importance file must hold N_PER_ROW floats");
    const int64_t n_rows = static_cast<int64_t>(rows.size()) / n_per_row;
    std::vector<uint8_t> out(ggml_row_size(type, n_per_row) * static_cast<size_t>(n_rows));
    ggml_quantize_init(type);
    const auto t0 = std::chrono::steady_clock::now();
    const size_t bytes = ggml_quantize_chunk(type, rows.data(), out.data(), 0, n_rows, n_per_row,
                                             importance.empty() ? nullptr : importance.data());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::ofstream of(argv[4], std::ios::binary);
    of.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(bytes));
    if (!of) throw std::runtime_error(std::string("cannot write ") + argv[4]);
    std::cout << "{\"bytes\": " << bytes << ", \"seconds\": " << seconds << "}\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "pocketlm-peer-quantize: " << e.what() << "\n";
    return 1;
  }
}
