#include <gtest/gtest.h>
#include "quant/formats/float.h"
TEST(Placeholder, X) { EXPECT_EQ(pocketlm::fp16_to_fp32(0x3C00), 1.0f); }
