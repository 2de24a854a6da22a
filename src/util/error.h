#pragma once
// Errors are values at the edges: parsers and public APIs return Expected<T> (a value or an Error whose
// message names the file, the field and the byte offset). Internal invariants use assert.
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace pocketlm {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message) : message_(std::move(message)) {}
  const std::string& message() const { return message_; }
  // Prefixes context, e.g. the file name: "model.gguf: " + message.
  Error with_context(const std::string& ctx) const { return Error(ctx + ": " + message_).about(setting_); }

  // The setting the error is about, by its library name ("n_ctx", "chat_template", ...), or "". Messages never
  // name a client's flags: a client maps the setting to its own spelling (the CLI: tools/pocketlm/common.cpp).
  Error about(std::string setting) const {
    Error e = *this;
    e.setting_ = std::move(setting);
    return e;
  }
  const std::string& setting() const { return setting_; }

 private:
  std::string message_;
  std::string setting_;
};

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Expected(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Status: Expected<void>.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  static Status Ok() { return {}; }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace pocketlm

#define PLM_CONCAT_INNER(a, b) a##b
#define PLM_CONCAT(a, b) PLM_CONCAT_INNER(a, b)
// PLM_TRY(auto x, expr): evaluates expr (an Expected); returns its error, or binds its value to x.
#define PLM_TRY(decl, expr) PLM_TRY_IMPL(PLM_CONCAT(plm_try_, __LINE__), decl, expr)
#define PLM_TRY_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                  \
  if (!tmp.ok()) return tmp.error();  \
  decl = std::move(tmp).value()
// PLM_CHECK(status_expr): returns the error of a failed Status.
#define PLM_CHECK(expr)                                \
  do {                                                 \
    auto plm_status_ = (expr);                         \
    if (!plm_status_.ok()) return plm_status_.error(); \
  } while (0)
