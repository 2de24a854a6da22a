#pragma once
#include <CLI/CLI.hpp>

namespace pocketlm::cli {
// Each subcommand lives in its own file and registers itself on the root app.
void add_run_command(CLI::App& root);
void add_chat_command(CLI::App& root);
void add_tokenize_command(CLI::App& root);
void add_inspect_command(CLI::App& root);
void add_synth_command(CLI::App& root);
void add_bench_command(CLI::App& root);
void add_eval_command(CLI::App& root);
void add_perplexity_command(CLI::App& root);
void add_quantize_command(CLI::App& root);
void add_imatrix_command(CLI::App& root);
void add_prune_command(CLI::App& root);
void add_plan_command(CLI::App& root);
void add_tune_command(CLI::App& root);
void add_serve_command(CLI::App& root);
}  // namespace pocketlm::cli
