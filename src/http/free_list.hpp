// A per-thread free list of large blocks (request and response buffers) that follows the
// load: blocks come back for the next lease, so a busy worker allocates nothing per
// request, and trim(), called about once a second, frees half of those that stayed unused
// since the last trim, so memory held for a burst drains away once the burst is over.
// Not thread-safe: one per worker thread.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace sb::http {

template <class T>
class FreeList {
 public:
  explicit FreeList(std::size_t max) : max_(max) {}

  /// A kept block, or nullptr when there is none (the caller makes one).
  std::unique_ptr<T> take() {
    if (items_.empty()) return nullptr;
    std::unique_ptr<T> p = std::move(items_.back());
    items_.pop_back();
    if (items_.size() < low_) low_ = items_.size();
    return p;
  }
  /// Keeps `p` for a later take(), or frees it when `max` are kept already.
  void put(std::unique_ptr<T> p) {
    if (items_.size() < max_) items_.push_back(std::move(p));
  }
  /// Frees half (rounded up) of the blocks that no take() needed since the last trim: the
  /// fewest kept at any moment since then. Steady load keeps what it cycles through; an
  /// idle worker drops to none within a few trims.
  void trim() {
    const std::size_t unused = low_ < items_.size() ? low_ : items_.size();
    const std::size_t drop = (unused + 1) / 2;
    // The oldest first: the front of the vector is what was put back longest ago.
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(drop));
    low_ = items_.size();
  }
  std::size_t size() const { return items_.size(); }

 private:
  std::size_t max_;
  std::vector<std::unique_ptr<T>> items_;
  std::size_t low_ = 0;  // fewest kept since the last trim
};

}  // namespace sb::http
