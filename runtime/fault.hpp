// Fault injection for tests: the Nth device-memory allocation, pipeline creation or queue
// submission/wait from now on reports a Vulkan failure (out of device memory, or a lost device for
// submissions), as a driver would. Off unless a test arms it; the counters are process-wide.
#pragma once

#include <cstdint>

namespace gqavk::fault {

enum class Site { memory, pipeline, submit };

// Makes the `nth` (1-based) call at `site` from now on fail; 0 disarms. Resets the site's count.
void arm(Site site, uint64_t nth);
// Calls at `site` since it was last armed (or since the start).
uint64_t calls(Site site);
// Counts a call at `site`; true when it is the one to fail.
bool hit(Site site);

}  // namespace gqavk::fault
