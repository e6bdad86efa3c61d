#include "fault.hpp"

#include <atomic>

namespace gqavk::fault {

namespace {

struct Counter {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> fail_at{0};  // 0: never
};

Counter counters[3];

}  // namespace

void arm(Site site, uint64_t nth) {
  Counter& c = counters[static_cast<int>(site)];
  c.calls = 0;
  c.fail_at = nth;
}

uint64_t calls(Site site) { return counters[static_cast<int>(site)].calls; }

bool hit(Site site) {
  Counter& c = counters[static_cast<int>(site)];
  const uint64_t n = ++c.calls;
  return c.fail_at != 0 && n == c.fail_at;
}

}  // namespace gqavk::fault
