#pragma once
// Flags and helpers shared by the subcommands (llama.cpp's flag names and defaults).
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "util/byte_size.h"  // human_bytes, for the commands

namespace pocketlm::cli {

struct ModelFlags {
  std::string model;
  int64_t n_ctx = 4096;
  int threads = 0;
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  std::string kv_budget;   // e.g. "64M", "1.5G", "300000000"; empty: what -c needs
  int64_t kv_block = 32;
};
// Parses a byte size with an optional K/M/G suffix (powers of 1024); an error names the flag.
Expected<size_t> parse_byte_size(const std::string& s, const std::string& flag);
// The session options the model flags give (errors name the flag).
Expected<SessionOptions> session_options(const ModelFlags& f);
void add_model_flags(CLI::App& app, ModelFlags& f);
void add_sampler_flags(CLI::App& app, SamplerParams& p);

// Loads the model and makes a session; prints the error and returns null on failure.
std::unique_ptr<Model> load_model(const std::string& path);
std::unique_ptr<Session> make_session(const Model& m, const ModelFlags& f);

// Reads a whole file (for -f); prints an error and returns false on failure.
bool read_text_file(const std::string& path, std::string& out);


// Prints "error: MESSAGE" on stderr and, when the error is about a setting (Error::setting), the flag that
// sets it: library messages never name flags.
void print_error(const Error& e);

int run_main(CLI::App& app);
int chat_main(CLI::App& app);

}  // namespace pocketlm::cli
