// Gathers the pieces of one write (head, chunk-size lines, data, CRLFs) so that each read
// from an upstream costs one writev. Fixed storage, no allocation. It lives in the
// Exchange rather than on coroutine frames: Asio recycles only frames under ~1 KiB.
#pragma once

#include <array>
#include <string_view>

#include "http/io.hpp"
#include "http/message.hpp"

namespace sb::http {

class WriteBatch {
 public:
  static constexpr std::size_t kMaxBuffers = 48;
  static constexpr std::size_t kMaxChunks = 15;

  void add(std::string_view s) {
    if (!s.empty()) bufs_[n_++] = asio::const_buffer(s.data(), s.size());
  }
  /// One chunk of chunked framing: size line, data, CRLF.
  void add_chunk(std::string_view data) {
    if (data.empty()) return;
    char* line = lines_[lines_used_++].data();
    add({line, format_chunk_size(data.size(), line)});
    add(data);
    add("\r\n");
  }
  /// True when another add_chunk() might not fit: flush first.
  bool full() const { return n_ + 4 > kMaxBuffers || lines_used_ == kMaxChunks; }
  bool empty() const { return n_ == 0; }
  Buffers buffers() const { return Buffers(bufs_.data(), n_); }
  void clear() {
    n_ = 0;
    lines_used_ = 0;
  }

 private:
  std::array<asio::const_buffer, kMaxBuffers> bufs_;
  std::size_t n_ = 0;
  std::array<std::array<char, 20>, kMaxChunks> lines_;
  std::size_t lines_used_ = 0;
};

}  // namespace sb::http
