// Gathers the pieces of one write (head, chunk-size lines, data, CRLFs) so that each read
// from an upstream costs one writev. Written with write_some() and consume() rather than
// asio::async_write, whose composed operation costs ~400 instructions per write here. Fixed
// storage, no allocation. It lives in the Exchange rather than on coroutine frames (each frame is
// allocated per coroutine call).
#pragma once

#include <array>
#include <string_view>

#include "core/assert.hpp"
#include "http/io.hpp"
#include "http/message.hpp"

namespace sb::http {

class WriteBatch {
 public:
  static constexpr std::size_t kMaxBuffers = 48;
  static constexpr std::size_t kMaxChunks = 15;

  /// At most kMaxBuffers pieces between clear()s: callers flush when full(). Past that,
  /// a bug: debug aborts; release drops the piece (the response is cut short, which the
  /// client sees) rather than write past the array.
  void add(std::string_view s) {
    if (s.empty()) return;
    if (n_ == kMaxBuffers) [[unlikely]] {
      SB_BUG("WriteBatch::add() past kMaxBuffers: the caller did not flush when full()");
      return;
    }
    bufs_[n_++] = asio::const_buffer(s.data(), s.size());
    bytes_ += s.size();
  }
  /// One chunk of chunked framing: size line, data, CRLF.
  void add_chunk(std::string_view data) {
    if (data.empty()) return;
    if (lines_used_ == kMaxChunks) [[unlikely]] {
      SB_BUG("WriteBatch::add_chunk() past kMaxChunks: the caller did not flush when full()");
      return;
    }
    char* line = lines_[lines_used_++].data();
    add({line, format_chunk_size(data.size(), line)});
    add(data);
    add("\r\n");
  }
  /// True when another add_chunk() might not fit: flush first.
  bool full() const { return n_ + 4 > kMaxBuffers || lines_used_ == kMaxChunks; }
  bool empty() const { return first_ == n_; }
  /// What is still to be written.
  Buffers buffers() const { return Buffers(bufs_.data() + first_, n_ - first_); }
  std::size_t bytes() const { return bytes_; }
  /// Drops the first `n` bytes (after a partial write).
  void consume(std::size_t n) {
    SB_ASSERT(n <= bytes_);  // a write never reports more than it was given
    bytes_ -= n;
    while (n > 0) {
      asio::const_buffer& b = bufs_[first_];
      if (n < b.size()) {
        b += n;
        return;
      }
      n -= b.size();
      ++first_;
    }
  }
  void clear() {
    n_ = 0;
    first_ = 0;
    bytes_ = 0;
    lines_used_ = 0;
  }

 private:
  std::array<asio::const_buffer, kMaxBuffers> bufs_;
  std::size_t n_ = 0;
  std::size_t first_ = 0;  // buffers before it are written
  std::size_t bytes_ = 0;  // bytes not yet written
  std::array<std::array<char, 20>, kMaxChunks> lines_;
  std::size_t lines_used_ = 0;
};

}  // namespace sb::http
