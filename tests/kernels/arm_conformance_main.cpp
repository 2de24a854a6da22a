// Standalone conformance runner for the kernel paths, with no test framework: the ARM cross build
// (scripts/test-arm.sh, -DPOCKETLM_KERNELS_ONLY=ON) runs it under qemu-aarch64, where GoogleTest is not
// installed. It runs kernel_conformance.h's check_path() on every SIMD path this CPU can run (and so on the
// path POCKETLM_ISA forces, which must then be the active one), prints what it checked, and exits non-zero
// on any mismatch, on a broken dispatch expectation, or when it checked no SIMD path at all.
//
//   pocketlm_kernel_conformance [--expect-paths a,b,...] [--expect-active NAME] [--seeds N]
//     --expect-paths   the runnable SIMD paths, best first, must be exactly these (e.g. i8mm,dotprod,neon)
//     --expect-active  the path dispatch picks (with POCKETLM_ISA unset: the best one) must be NAME
//     --seeds          run the random checks with N seeds (default 1)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/kernel_conformance.h"
#include "util/cpu_features.h"

namespace {

using pocketlm::kernels::KernelTable;

struct Args {
  std::string expect_paths;  // empty: not checked
  std::string expect_active;
  int seeds = 1;
};

bool parse_args(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "conformance: %s needs a value\n", a.c_str());
      return false;
    }
    const char* v = argv[++i];
    if (a == "--expect-paths") {
      args.expect_paths = v;
    } else if (a == "--expect-active") {
      args.expect_active = v;
    } else if (a == "--seeds") {
      args.seeds = std::atoi(v);
      if (args.seeds < 1 || args.seeds > 1000) {
        std::fprintf(stderr, "conformance: --seeds must be 1..1000, got '%s'\n", v);
        return false;
      }
    } else {
      std::fprintf(stderr, "conformance: unknown option '%s' (known: --expect-paths, --expect-active, --seeds)\n",
                   a.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) return 2;
  namespace k = pocketlm::kernels;
  int failures = 0;

  std::string runnable;  // SIMD paths, best first
  std::vector<const KernelTable*> simd;
  for (const KernelTable* t : k::runnable_tables()) {
    if (std::strcmp(t->name, "scalar") == 0) continue;
    simd.push_back(t);
    runnable += runnable.empty() ? "" : ",";
    runnable += t->name;
  }
  const char* forced = std::getenv("POCKETLM_ISA");
  if (const pocketlm::Status st = k::isa_override_status(); !st.ok()) {
    std::fprintf(stderr, "conformance: %s\n", st.error().message().c_str());
    return 1;
  }
  const KernelTable& active = k::active_table();
  std::printf("cpu features: %s\n", pocketlm::cpu_features().describe().c_str());
  std::printf("runnable SIMD paths: %s\n", runnable.empty() ? "(none)" : runnable.c_str());
  std::printf("active path: %s%s%s\n", active.name, forced != nullptr ? " (POCKETLM_ISA=" : "",
              forced != nullptr ? (std::string(forced) + ")").c_str() : "");

  if (!args.expect_paths.empty() && args.expect_paths != runnable) {
    std::printf("FAIL: expected runnable SIMD paths %s, dispatch sees %s\n", args.expect_paths.c_str(),
                runnable.empty() ? "(none)" : runnable.c_str());
    ++failures;
  }
  if (!args.expect_active.empty() && args.expect_active != active.name) {
    std::printf("FAIL: expected active path %s, dispatch picked %s\n", args.expect_active.c_str(), active.name);
    ++failures;
  }
  if (forced != nullptr && forced[0] != '\0' && std::strcmp(forced, active.name) != 0) {
    std::printf("FAIL: POCKETLM_ISA=%s but the active path is %s\n", forced, active.name);
    ++failures;
  }
  if (simd.empty()) {
    std::printf("FAIL: no SIMD path to check (this binary or CPU runs only the scalar path)\n");
    ++failures;
  }

  for (const KernelTable* t : simd) {
    int checks = 0;
    std::vector<std::string> lines;
    for (int s = 0; s < args.seeds; ++s) {
      const k::testing::ConformanceReport rep = k::testing::check_path(*t, 1234u + static_cast<unsigned>(s));
      checks += rep.checks;
      lines.insert(lines.end(), rep.failures.begin(), rep.failures.end());
    }
    std::printf("%-8s %s: %d outputs checked, %zu failures\n", t->name, t == &active ? "(active)" : "        ", checks,
                lines.size());
    for (const std::string& f : lines) std::printf("  FAIL %s\n", f.c_str());
    if (checks < 1000) {
      std::printf("FAIL: %s checked only %d outputs\n", t->name, checks);
      ++failures;
    }
    failures += static_cast<int>(lines.size());
  }
  std::printf("%s\n", failures == 0 ? "conformance: ok" : "conformance: FAILED");
  return failures == 0 ? 0 : 1;
}
