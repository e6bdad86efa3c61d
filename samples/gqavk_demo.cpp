// Placeholder: being written.
#include <cstdio>
int main() {
  std::fprintf(stderr, "not built yet\n");
  return 1;
}
