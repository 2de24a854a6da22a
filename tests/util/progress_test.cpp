#include "util/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace pocketlm {
namespace {

std::string read_all(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

TEST(Progress, NonTerminalPrintsDecilesAndAFinalLine) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    Progress p("quantize", 100, "tensors", f);
    for (int i = 0; i < 100; ++i) p.add();
  }
  const std::string out = read_all(f);
  std::fclose(f);
  int lines = 0;
  for (char c : out) lines += c == '\n';
  EXPECT_EQ(lines, 11) << out;  // 0 %, 10 %, ..., 90 % and the final line
  EXPECT_NE(out.find("quantize [########################] 100/100 tensors in"), std::string::npos) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
}

TEST(Progress, FinishIsIdempotent) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    Progress p("x", 2, "", f);
    p.set(2);
    p.finish();
    p.finish();
  }
  const std::string out = read_all(f);
  std::fclose(f);
  EXPECT_EQ(out.find(" in "), out.rfind(" in ")) << out;
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(Progress::format_duration(7.2), "0:07");
  EXPECT_EQ(Progress::format_duration(62), "1:02");
  EXPECT_EQ(Progress::format_duration(3723), "1:02:03");
  EXPECT_EQ(Progress::format_duration(-1), "--:--");
}

}  // namespace
}  // namespace pocketlm
