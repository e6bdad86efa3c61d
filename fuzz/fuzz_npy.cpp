// libFuzzer target: gqavk::npy::load (samples/npy.cpp) on arbitrary file contents. The bytes go
// into an in-memory file (memfd) that load() opens by its /proc/self/fd path, so the reader runs
// unchanged, stat and all. Every input must load or throw std::runtime_error.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "npy.hpp"

namespace {

int memory_file() {
  static const int fd = [] {
    const int f = memfd_create("fuzz.npy", 0);
    if (f < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memory_file();
  if (ftruncate(fd, 0) != 0) std::abort();
  std::size_t written = 0;
  while (written < size) {
    const ssize_t n = pwrite(fd, data + written, size - written, static_cast<off_t>(written));
    if (n <= 0) std::abort();
    written += static_cast<std::size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const gqavk::npy::Array array = gqavk::npy::load(path);
    std::size_t count = 1;
    for (const std::size_t d : array.shape) count *= d;
    if (count != array.data.size()) std::abort();  // the shape must describe the data read
  } catch (const std::runtime_error&) {
  }
  return 0;
}
