#include "commands.h"
namespace pocketlm::cli {
void add_bench_command(CLI::App&) {}
}
