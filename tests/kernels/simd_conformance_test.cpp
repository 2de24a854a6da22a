// Every SIMD path this CPU can run equals the scalar reference (kernel_conformance.h lists the checks).
#include <gtest/gtest.h>

#include "kernels/dispatch.h"
#include "kernels/kernel_conformance.h"

namespace pocketlm::kernels {
namespace {

TEST(SimdConformance, EveryRunnablePathMatchesTheScalarReference) {
  int paths = 0;
  for (const KernelTable* t : runnable_tables()) {
    if (std::string(t->name) == "scalar") continue;
    ++paths;
    const testing::ConformanceReport rep = testing::check_path(*t);
    EXPECT_GT(rep.checks, 1000) << t->name;
    for (const auto& f : rep.failures) ADD_FAILURE() << f;
  }
  if (paths == 0) GTEST_SKIP() << "this CPU runs no SIMD path (scalar only)";
}

TEST(SimdConformance, DispatchPicksTheBestRunnablePath) {
  const auto tables = runnable_tables();
  ASSERT_FALSE(tables.empty());
  EXPECT_STREQ(tables.back()->name, "scalar");
  if (std::getenv("POCKETLM_ISA") == nullptr) {
    EXPECT_EQ(&active_table(), tables.front());
  }
  EXPECT_FALSE(static_cast<bool>(table_by_name("no-such-path")));
}

}  // namespace
}  // namespace pocketlm::kernels
