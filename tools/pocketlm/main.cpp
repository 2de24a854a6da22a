// pocketlm: run, chat, tokenize and inspect GGUF language models on the CPU.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  // llama.cpp's multi-letter short flags (-ctk, -ctv) are spelled as long options for CLI11.
  std::vector<std::string> args(argv, argv + argc);
  for (auto& a : args) {
    if (a == "-ctk")
      a = "--cache-type-k";
    else if (a == "-ctv")
      a = "--cache-type-v";
    else if (a == "-np")
      a = "--parallel";
  }
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());

  CLI::App app{"pocketlm — language models on phones and edge boards (GGUF, CPU)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pocketlm 0.1.0");
  pocketlm::cli::add_run_command(app);
  pocketlm::cli::add_chat_command(app);
  pocketlm::cli::add_tokenize_command(app);
  pocketlm::cli::add_inspect_command(app);
  pocketlm::cli::add_synth_command(app);
  pocketlm::cli::add_bench_command(app);
  pocketlm::cli::add_eval_command(app);
  pocketlm::cli::add_perplexity_command(app);
  pocketlm::cli::add_quantize_command(app);
  pocketlm::cli::add_imatrix_command(app);
  pocketlm::cli::add_prune_command(app);
  pocketlm::cli::add_plan_command(app);
  pocketlm::cli::add_tune_command(app);
  pocketlm::cli::add_serve_command(app);
  try {
    app.parse(static_cast<int>(argp.size()), argp.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
