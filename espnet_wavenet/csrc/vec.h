// Native-width vectors (one register: VW floats) and the kernel's elementwise math.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace wn {

// Floats per vector and rows per weight panel: one native vector register
// (GCC lowers wider generic vectors on AVX2 badly: ~20x slower, measured).
#if defined(__AVX512F__)
constexpr int VW = 16;
#elif defined(__AVX__)
constexpr int VW = 8;
#else
constexpr int VW = 4;
#endif
// VW-lane vectors: vf floats (vfu unaligned), vi int32 (viu unaligned).
typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));

#if defined(__AVX512F__)
constexpr int SMAX = 8;  // streams per register block (32 vector registers)
#else
constexpr int SMAX = 4;  // 16 vector registers
#endif

typedef int32_t viu __attribute__((vector_size(VW * 4), aligned(4)));

inline vf vload(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline vi vload(const int32_t* p) { return *reinterpret_cast<const viu*>(p); }
inline void vstore(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }
inline vf splat(float x) { return vf{} + x; }

// x < c ? x : c and x > c ? x : c (c also where x is NaN), as one min/max
// instruction: GCC writes the ternaries as a compare and a blend.
inline vf vmin(vf x, vf c) {
#if defined(__AVX512F__)
  return (vf)_mm512_min_ps((__m512)x, (__m512)c);
#elif defined(__AVX__)
  return (vf)_mm256_min_ps((__m256)x, (__m256)c);
#elif defined(__SSE__)
  return (vf)_mm_min_ps((__m128)x, (__m128)c);
#else
  return x < c ? x : c;
#endif
}
inline vf vmax(vf x, vf c) {
#if defined(__AVX512F__)
  return (vf)_mm512_max_ps((__m512)x, (__m512)c);
#elif defined(__AVX__)
  return (vf)_mm256_max_ps((__m256)x, (__m256)c);
#elif defined(__SSE__)
  return (vf)_mm_max_ps((__m128)x, (__m128)c);
#else
  return x > c ? x : c;
#endif
}

// Half-precision weights: VW halves -> VW floats (one F16C conversion).
inline vf vload(const uint16_t* p) {
#if defined(__AVX512F__)
  return (vf)_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#elif defined(__F16C__) && defined(__AVX__)
  return (vf)_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#elif defined(__aarch64__)
  return (vf)vcvt_f32_f16(vld1_f16(reinterpret_cast<const __fp16*>(p)));
#else
  vf r;
  for (int i = 0; i < VW; ++i) r[i] = (float)(*reinterpret_cast<const _Float16*>(p + i));
  return r;
#endif
}

// exp with Cody-Waite range reduction and a degree-6 polynomial (~1 ulp).
inline vf vexp(vf x) {
#if defined(__AVX512F__)
  // k = round(x / ln 2) and the product p 2^k by vscalefps, which saturates to
  // 0 and inf itself: no integer detour (half the instructions).  The clamps
  // keep the reduction exact (x = -1e30 would make r garbage).
  x = vmax(vmin(x, splat(89.0f)), splat(-104.0f));
  const __m512 k = _mm512_roundscale_ps((__m512)(x * 1.44269504088896341f),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vf kf = (vf)k;
#elif defined(__AVX__)
  // k = round(x / ln 2) by vroundps (floor(x / ln 2 + 0.5) by truncation and
  // correction took 5 more instructions; the two differ only at exact halves).
  x = vmax(vmin(x, splat(88.0f)), splat(-87.0f));
  const vf kf = (vf)_mm256_round_ps((__m256)(x * 1.44269504088896341f),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vi ki = __builtin_convertvector(kf, vi);
#else
  x = vmax(vmin(x, splat(88.0f)), splat(-87.0f));
  vf fx = x * 1.44269504088896341f + 0.5f;
  vi ki = __builtin_convertvector(fx, vi);
  vf kf = __builtin_convertvector(ki, vf);
  vi gt = kf > fx;  // truncation rounded up: floor it
  kf += __builtin_convertvector(gt, vf);
  ki += gt;
#endif
  vf r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
#if defined(__AVX512F__)
  return (vf)_mm512_scalef_ps((__m512)p, k);
#else
  vi e = (ki + 127) << 23;
  return p * (vf)e;
#endif
}
// tanh(a) * sigmoid(b) with one division instead of two (a division is the
// slowest vector instruction here): (e - 1) / ((e + 1) (1 + exp(-b))), e =
// exp(2a).  a is clamped to +-9, where tanh is 1.0f already, so e + 1 stays
// finite; a very negative b makes the denominator inf and the product 0.
inline vf vgate(vf a, vf b) {
  a = vmax(vmin(a, splat(9.0f)), splat(-9.0f));
  const vf e = vexp(a + a);
  return (e - 1.0f) / ((e + 1.0f) * (1.0f + vexp(-b)));
}

// The largest lane, in log depth where there are shuffles (max is exact, so
// the order does not change the result).
inline float hmax(vf v) {
#if defined(__AVX512F__)
  return _mm512_reduce_max_ps((__m512)v);
#elif defined(__AVX__)
  __m128 h = _mm_max_ps(_mm256_castps256_ps128((__m256)v), _mm256_extractf128_ps((__m256)v, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
#else
  float m = v[0];
  for (int i = 1; i < VW; ++i) m = std::max(m, v[i]);
  return m;
#endif
}

}  // namespace wn
