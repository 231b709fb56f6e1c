// The int8 products with AVX-512 VNNI (qgemm_vnni.cpp), called by qgemm.cpp where the CPU
// has it. Plain declarations only: see qgemm_vnni.cpp for why.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lstm_native {
namespace qgemm {
namespace vnni {

// Whether this build compiled the VNNI kernels (an x86 build with AVX2 or wider).
bool compiled();

// a . b over kp bytes (a multiple of 32).
std::int32_t dot(const std::uint8_t* a, const std::int8_t* b, std::ptrdiff_t kp);

// out[r * 4 + j] = row r of a . row j of b, for `rows` rows of a and 4 rows of b (all kp
// bytes long, kp a multiple of 32).
void rows_x4(const std::uint8_t* a, std::ptrdiff_t rows, const std::int8_t* b, std::ptrdiff_t kp, std::int32_t* out);

}  // namespace vnni
}  // namespace qgemm
}  // namespace lstm_native
