# cmake -DSPV=in.spv -DOUT=out.cpp -DNAME=symbol -P EmbedSpirv.cmake
# Turns a SPIR-V binary into a C++ source holding it as a uint32_t array, so no shader is read from
# disk at run time.
file(READ "${SPV}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR rem "${hex_len} % 8")
if(NOT rem EQUAL 0 OR hex_len EQUAL 0)
  message(FATAL_ERROR "${SPV}: size is not a multiple of 4 bytes")
endif()
# SPIR-V words are little-endian: reorder each group of 4 bytes into one 0x-word.
string(REGEX REPLACE "([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])"
       "0x\\4\\3\\2\\1u," words "${hex}")
file(WRITE "${OUT}.tmp"
  "// Generated from ${SPV}; do not edit.\n#include <cstddef>\n#include <cstdint>\n"
  "namespace gqavk::spv {\nextern const uint32_t ${NAME}[];\nextern const size_t ${NAME}_words;\n"
  "const uint32_t ${NAME}[] = {${words}};\n"
  "const size_t ${NAME}_words = sizeof(${NAME}) / sizeof(uint32_t);\n}  // namespace gqavk::spv\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
