/* LD_PRELOAD shim for ./scripts/test.sh --sanitize: dlclose does nothing. The Vulkan loader
 * unloads the driver (lavapipe) and the layers at vkDestroyInstance; what they keep in globals
 * would then show as leaks in an <unknown module> that no suppression can name, and their
 * stacks could not be symbolized. Kept loaded, their memory stays reachable and any report names
 * the library. */
int dlclose(void* handle) {
  (void)handle;
  return 0;
}
