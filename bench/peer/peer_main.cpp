// pocketlm-peer: runs llama.cpp (linked from the git-ignored .peer/ build) on the same inputs the tests give
// pocketlm, and prints one JSON object on stdout. See docs/peer.md for each subcommand.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "peer_args.h"
#include "peer_bench.h"
#include "peer_llama.h"

namespace pocketlm::peer {
namespace {

using nlohmann::json;

constexpr const char* kChunking =
    "rows = evaluated positions = --positions N. Chunk 0 is the first min(CTX, N) tokens of the whole file's "
    "tokenization (add_special: it starts with BOS when the vocabulary adds one). Every later chunk is BOS "
    "followed by the next min(CTX-1, rows left - 1) tokens of that stream when the vocabulary adds BOS, "
    "else the next min(CTX, rows left) tokens. Each chunk is evaluated alone in a fresh context from "
    "position 0 with logits for every token. tokens, targets and top1 are flat over all chunks; targets[i] "
    "is the token that follows tokens[i] in the file's stream.";

std::string input_text(const PeerArgs& a) { return a.prompt ? *a.prompt : read_file(*a.text_file); }

ContextOptions context_options(const PeerArgs& a, uint32_t n_ctx) {
  ContextOptions o;
  o.n_ctx = n_ctx;
  o.n_batch = n_ctx;
  o.n_threads = a.n_threads;
  o.flash_attn = a.flash_attn;
  o.type_k = cache_type_from_name(a.cache_type_k);
  o.type_v = cache_type_from_name(a.cache_type_v);
  return o;
}

json context_json(const PeerArgs& a, uint32_t n_ctx) {
  return {{"n_ctx", n_ctx},
          {"n_threads", a.n_threads},
          {"flash_attn", a.flash_attn},
          {"cache_type_k", a.cache_type_k},
          {"cache_type_v", a.cache_type_v},
          {"repack", a.repack}};
}

json run_tokenize(const PeerArgs& a) {
  const ModelPtr model = load_model(a.model, /*vocab_only=*/true);
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  const auto ids = tokenize(vocab, input_text(a), /*add_special=*/!a.no_bos, a.parse_special);
  return {{"ids", ids}};
}

json run_greedy(const PeerArgs& a) {
  const ModelPtr model = load_model(a.model, /*vocab_only=*/false, a.repack);
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  const auto prompt = tokenize(vocab, input_text(a), /*add_special=*/!a.no_bos, a.parse_special);
  if (prompt.empty()) throw std::runtime_error("the prompt has no tokens");
  const size_t needed = prompt.size() + static_cast<size_t>(a.n_predict);
  const auto n_ctx = static_cast<uint32_t>(a.n_ctx > 0 ? static_cast<size_t>(a.n_ctx) : needed);
  if (needed > n_ctx) {
    throw std::runtime_error("prompt (" + std::to_string(prompt.size()) + " tokens) + -n " +
                             std::to_string(a.n_predict) + " exceeds -c " + std::to_string(n_ctx));
  }
  const ContextPtr ctx = new_context(model.get(), context_options(a, n_ctx));

  std::vector<llama_token> out;
  std::string text;
  json stop = "length";
  decode(ctx.get(), prompt, 0, /*all_logits=*/false);
  auto pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < a.n_predict; ++i) {
    const float* logits = llama_get_logits_ith(ctx.get(), -1);
    if (logits == nullptr) throw std::runtime_error("no logits after decode");
    const llama_token next = argmax(logits, n_vocab);
    if (llama_vocab_is_eog(vocab, next)) {
      stop = {{"eog", next}};
      break;
    }
    out.push_back(next);
    text += token_piece(vocab, next);
    if (i + 1 == a.n_predict) break;
    decode(ctx.get(), std::span<const llama_token>(&next, 1), pos++, /*all_logits=*/false);
  }
  // "stop" is "length", or {"eog": id} when an end-of-generation token was the argmax (it is not in ids).
  return {{"prompt_ids", prompt}, {"ids", out}, {"text", text}, {"stop", stop}, {"context", context_json(a, n_ctx)}};
}

json run_top1(const PeerArgs& a) {
  const ModelPtr model = load_model(a.model, /*vocab_only=*/false, a.repack);
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  const uint32_t n_ctx = a.n_ctx > 0 ? static_cast<uint32_t>(a.n_ctx) : 512u;
  const auto stream = tokenize(vocab, read_file(*a.text_file), /*add_special=*/true, /*parse_special=*/false);
  const bool insert_bos = llama_vocab_get_add_bos(vocab) && llama_vocab_bos(vocab) != LLAMA_TOKEN_NULL;
  if (insert_bos && n_ctx < 2) throw std::runtime_error("-c must be at least 2 when BOS is re-inserted");

  // Lay out the chunks (see kChunking); `next` is the index in `stream` of the next unconsumed token.
  const auto rows_wanted = static_cast<size_t>(a.positions);
  std::vector<std::vector<llama_token>> chunks;
  std::vector<llama_token> targets;
  size_t next = 0;
  size_t rows = 0;
  while (rows < rows_wanted) {
    std::vector<llama_token> chunk;
    const size_t left = rows_wanted - rows;
    size_t take = std::min<size_t>(n_ctx, left);
    if (!chunks.empty() && insert_bos) {
      chunk.push_back(llama_vocab_bos(vocab));
      take = std::min<size_t>(n_ctx - 1, left - 1);
    }
    if (next + take + 1 > stream.size()) {
      throw std::runtime_error(*a.text_file + " has " + std::to_string(stream.size()) +
                               " tokens, too few for --positions " + std::to_string(a.positions));
    }
    chunk.insert(chunk.end(), stream.begin() + static_cast<std::ptrdiff_t>(next),
                 stream.begin() + static_cast<std::ptrdiff_t>(next + take));
    next += take;
    for (size_t i = 1; i < chunk.size(); ++i) targets.push_back(chunk[i]);
    targets.push_back(stream[next]);
    rows += chunk.size();
    chunks.push_back(std::move(chunk));
  }

  std::ofstream logits_out;
  if (!a.logits_out.empty()) {
    logits_out.open(a.logits_out, std::ios::binary | std::ios::trunc);
    if (!logits_out) throw std::runtime_error(a.logits_out + ": cannot create");
  }
  std::vector<llama_token> tokens;
  std::vector<llama_token> top1;
  std::vector<size_t> chunk_sizes;
  for (const auto& chunk : chunks) {
    const ContextPtr ctx = new_context(model.get(), context_options(a, n_ctx));  // fresh per chunk
    decode(ctx.get(), chunk, 0, /*all_logits=*/true);
    for (size_t i = 0; i < chunk.size(); ++i) {
      const float* logits = llama_get_logits_ith(ctx.get(), static_cast<int32_t>(i));
      if (logits == nullptr) throw std::runtime_error("missing logits row " + std::to_string(i));
      top1.push_back(argmax(logits, n_vocab));
      if (logits_out.is_open()) {
        logits_out.write(reinterpret_cast<const char*>(logits),
                         static_cast<std::streamsize>(sizeof(float) * static_cast<size_t>(n_vocab)));
      }
    }
    tokens.insert(tokens.end(), chunk.begin(), chunk.end());
    chunk_sizes.push_back(chunk.size());
  }
  if (logits_out.is_open()) {
    logits_out.close();
    if (!logits_out) throw std::runtime_error(a.logits_out + ": write error");
  }
  size_t hits = 0;
  for (size_t i = 0; i < top1.size(); ++i) hits += top1[i] == targets[i] ? 1 : 0;

  json j = {{"tokens", tokens},
            {"targets", targets},
            {"top1", top1},
            {"chunks", chunk_sizes},
            {"n_ctx", n_ctx},
            {"n_vocab", n_vocab},
            {"n_positions", tokens.size()},
            {"bos_inserted", insert_bos},
            {"top1_accuracy", static_cast<double>(hits) / static_cast<double>(top1.size())},
            {"chunking", kChunking},
            {"context", context_json(a, n_ctx)}};
  if (!a.logits_out.empty()) {
    j["logits_file"] = {{"path", a.logits_out}, {"dtype", "float32"}, {"shape", {tokens.size(), n_vocab}}};
  }
  return j;
}

json run_info(const PeerArgs& a) {
  const ModelPtr model = load_model(a.model, /*vocab_only=*/false, a.repack);
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  char desc[256] = {};
  llama_model_desc(model.get(), desc, sizeof(desc));
  return {{"llama_cpp", llama_version()},
          {"desc", desc},
          {"n_vocab", llama_vocab_n_tokens(vocab)},
          {"n_ctx_train", llama_model_n_ctx_train(model.get())},
          {"n_embd", llama_model_n_embd(model.get())},
          {"n_layer", llama_model_n_layer(model.get())},
          {"n_params", llama_model_n_params(model.get())},
          {"bos", llama_vocab_bos(vocab)},
          {"eos", llama_vocab_eos(vocab)},
          {"add_bos", llama_vocab_get_add_bos(vocab)},
          {"add_eos", llama_vocab_get_add_eos(vocab)}};
}

json run(const PeerArgs& a) {
  if (a.command == "tokenize") return run_tokenize(a);
  if (a.command == "greedy") return run_greedy(a);
  if (a.command == "top1") return run_top1(a);
  if (a.command == "bench") return run_bench(a);
  return run_info(a);
}

}  // namespace
}  // namespace pocketlm::peer

int main(int argc, char** argv) {
  using namespace pocketlm::peer;
  std::optional<PeerArgs> args;
  try {
    args = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "pocketlm-peer: " << e.what() << "\n" << usage();
    return 2;
  }
  if (!args) {
    std::cout << usage();
    return 0;
  }
  try {
    if (args->command == "bench") capture_llama_log(args->verbose);
    init_backend(args->verbose || args->command == "bench");
    const nlohmann::json out = run(*args);
    // Pieces of byte-level tokens can cut a UTF-8 character; such bytes print as U+FFFD.
    if (!out.is_null()) std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    llama_backend_free();
  } catch (const std::exception& e) {
    std::cerr << "pocketlm-peer " << args->command << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
