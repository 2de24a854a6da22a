#pragma once
// Flags and helpers shared by the subcommands (llama.cpp's flag names and defaults).
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "runtime/speculative/draft_setup.h"
#include "runtime/speculative/speculative_decoder.h"
#include "util/byte_size.h"  // human_bytes, for the commands

namespace pocketlm::cli {

struct ModelFlags {
  std::string model;
  int64_t n_ctx = 4096;
  int threads = 0;
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  std::string kv_budget;  // e.g. "64M", "1.5G", "300000000"; empty: what -c needs
  int64_t kv_block = 32;
};
// Speculative decoding (llama.cpp's flag names): the draft source and how much it drafts per round.
struct DraftFlags {
  std::string model;                               // --draft FILE
  std::string self_type;                           // --draft-self TYPE
  int64_t self_layers = 0;                         // --draft-layers N
  bool lookup = false;                             // --lookup
  int lookup_ngram_min = 1, lookup_ngram_max = 4;  // --lookup-ngram-min, --lookup-ngram-max
  DraftParams params;                              // --draft-max, --draft-min, --draft-p-min, --draft-fixed
};
void add_draft_flags(CLI::App& app, DraftFlags& f);
// The draft source the flags ask for (null: none), made for a target whose sessions take options `o` (which
// then name the thread pool and the KV pool the draft shares); prints the error and returns false on failure.
bool make_draft(const Model& m, const DraftFlags& df, SessionOptions& o, std::unique_ptr<DraftSource>& draft);
// The draft source the flags ask for (null: none) and the target's session, which shares the draft's thread
// pool and KV pool; prints the error and returns false on failure.
bool make_draft_and_session(const Model& m, const ModelFlags& mf, const DraftFlags& df,
                            std::unique_ptr<DraftSource>& draft, std::unique_ptr<Session>& session);
// "draft: accepted A/D (R %), mean accepted length L" (and the draft's share of the time).
std::string draft_summary(const SpeculativeStats& s);

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
