// Family::series(): the family's series as handles, for readers that merge them.
#include "telemetry/detail/series.hpp"
#include "telemetry/metrics.hpp"

namespace sb::telemetry {

template <class Handle>
std::vector<std::pair<std::vector<std::string>, Handle>> Family<Handle>::series() const {
  std::vector<std::pair<std::vector<std::string>, Handle>> out;
  for (detail::Series* s : f_->acquire_all())  // each with a reference the handle adopts
    out.emplace_back(s->values, detail::Family::make<Handle>(s));
  return out;
}

template std::vector<std::pair<std::vector<std::string>, Counter>> Family<Counter>::series() const;
template std::vector<std::pair<std::vector<std::string>, Gauge>> Family<Gauge>::series() const;
template std::vector<std::pair<std::vector<std::string>, Histogram>> Family<Histogram>::series()
    const;

}  // namespace sb::telemetry
