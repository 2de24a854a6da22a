#include "requantized_model.h"

#include <unistd.h>

#include "gguf/reader.h"
#include "quant/quantize_model.h"

namespace pocketlm::test {

RequantizedModel::RequantizedModel(const std::filesystem::path& source, const std::string& type) {
  path_ = (std::filesystem::temp_directory_path() /
           ("pocketlm-requantized-" + type + "-" + std::to_string(::getpid()) + "-" + source.stem().string() + ".gguf"))
              .string();
  auto in = GgufFile::open(source.string());
  if (!in.ok()) {
    error_ = in.error().message();
    return;
  }
  QuantizeOptions o;
  o.target = type;
  o.pure = true;  // every matrix in `type` (the head too)
  o.progress = false;
  o.n_threads = 2;
  auto plan = plan_quantization(*in, o);
  if (!plan.ok()) {
    error_ = plan.error().message();
    return;
  }
  if (auto r = quantize_model(*in, *plan, o, path_); !r.ok()) error_ = r.error().message();
}

RequantizedModel::~RequantizedModel() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace pocketlm::test
