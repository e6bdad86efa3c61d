// 64-bit byte addresses as uvec2 (low, high words), so no device needs 64-bit integers: the
// address of a texel past 4 GiB (index * 16) carries into the high word. Used by the address
// load path (kv_load.glsl) and the append kernel's address store path (append_kv.comp).
#ifndef GQAVK_KV_ADDRESS_GLSL
#define GQAVK_KV_ADDRESS_GLSL

// The address of byte `byte_` (< 16) of texel i of a pool starting at `base`.
uvec2 texel_address(uvec2 base, uint i, uint byte_) {
  uint carry;
  const uint lo = uaddCarry(base.x, (i << 4) | byte_, carry);
  return uvec2(lo, base.y + (i >> 28) + carry);
}

#endif
