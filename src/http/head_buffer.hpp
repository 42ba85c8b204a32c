// A growable byte buffer for building message heads: appends are inline memcpys with one
// capacity check, never an out-of-line std::string call. Reused across requests, so after
// warm-up nothing is allocated.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace sb::http {

class HeadBuffer {
 public:
  explicit HeadBuffer(std::size_t capacity = 1024)
      : p_(std::make_unique_for_overwrite<char[]>(capacity)), cap_(capacity) {}

  void clear() { len_ = 0; }
  std::size_t size() const { return len_; }
  bool empty() const { return len_ == 0; }
  const char* data() const { return p_.get(); }
  char back() const { return p_[len_ - 1]; }
  char& operator[](std::size_t i) { return p_[i]; }
  std::string_view view() const { return {p_.get(), len_}; }
  operator std::string_view() const { return view(); }

  /// Makes room for `n` more bytes and returns where they go (the caller fills them all).
  char* extend(std::size_t n) {
    if (cap_ - len_ < n) grow(n);
    char* at = p_.get() + len_;
    len_ += n;
    return at;
  }
  HeadBuffer& append(const char* s, std::size_t n) {
    if (n != 0) std::memcpy(extend(n), s, n);  // an empty view may have a null data()
    return *this;
  }
  HeadBuffer& append(std::string_view s) { return append(s.data(), s.size()); }
  HeadBuffer& operator+=(std::string_view s) { return append(s); }
  HeadBuffer& operator+=(char c) {
    *extend(1) = c;
    return *this;
  }
  void push_back(char c) { *extend(1) = c; }
  /// Inserts `count` copies of `c` at `pos` (rare: not for hot paths).
  void insert(std::size_t pos, std::size_t count, char c) {
    extend(count);
    std::memmove(p_.get() + pos + count, p_.get() + pos, len_ - count - pos);
    std::memset(p_.get() + pos, c, count);
  }

 private:
  void grow(std::size_t n) {
    std::size_t cap = cap_ * 2;
    while (cap - len_ < n) cap *= 2;
    auto bigger = std::make_unique_for_overwrite<char[]>(cap);
    std::memcpy(bigger.get(), p_.get(), len_);
    p_ = std::move(bigger);
    cap_ = cap;
  }

  std::unique_ptr<char[]> p_;
  std::size_t cap_;
  std::size_t len_ = 0;
};

}  // namespace sb::http
