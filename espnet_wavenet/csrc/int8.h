// int8 weights: activation quantization and integer panel products.
#pragma once

#include <cstring>

#include "matvec.h"

namespace wn {

// ------------------------------------------------------- int8 weights
// Each matrix row has a scale (max |w| / 127) and int8 weights; an activation
// vector is quantized on the fly the same way (one scale per vector) and
// offset to unsigned (q + 128), so one AVX-512 VNNI instruction (vpdpbusd)
// does 64 multiply-adds into int32.  The offset is removed with the row's
// precomputed 128 * sum(w).  Panels: VW rows, columns in groups of 4, so a
// panel's group is one vector (lane = row, 4 bytes = 4 columns).
// Integer sums are exact, so every thread layout rounds identically.

// Quantize n floats (n % 16 == 0) to offset bytes; returns the scale.
inline float quantize(const float* x, int n, uint8_t* q) {
  vf mx{};
  for (int i = 0; i < n; i += VW) {
    vf v = vload(x + i);
    v = v < 0.0f ? -v : v;
    mx = mx > v ? mx : v;
  }
#if defined(__AVX512F__)
  const float m = _mm512_reduce_max_ps((__m512)mx);  // log-depth, not 16 serial steps
#else
  float m = 0.0f;
  for (int i = 0; i < VW; ++i) m = std::max(m, mx[i]);
#endif
  if (!(m > 0.0f)) {
    std::memset(q, 128, n);
    return 0.0f;
  }
  const float inv = 127.0f / m;
  for (int i = 0; i < n; i += VW) {
#if defined(__AVX512F__)
    __m512i v = _mm512_cvtps_epi32((__m512)(vload(x + i) * inv));
    v = _mm512_add_epi32(v, _mm512_set1_epi32(128));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
#else
    for (int k = 0; k < VW; ++k) q[i + k] = (uint8_t)(std::nearbyint(x[i + k] * inv) + 128.0f);
#endif
  }
  return m / 127.0f;
}

template <int NV, int S>
inline void mvq_panels(const int8_t* W, size_t pstride, int cols, const uint8_t* xq, int xqs,
                       const float* sx, float* y, int ys, const float* init, int is,
                       const float* sr, const int32_t* cs) {
  vi acc[S][NV];
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[s][v] = vi{};
  for (int g = 0; g < cols / 4; ++g) {
#if defined(__AVX512VNNI__)
    __m512i w[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      w[v] = _mm512_loadu_si512(W + v * pstride + (size_t)g * 4 * VW);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      int32_t xb;
      std::memcpy(&xb, xq + s * xqs + 4 * g, 4);
      const __m512i xv = _mm512_set1_epi32(xb);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        acc[s][v] = (vi)_mm512_dpbusd_epi32((__m512i)acc[s][v], xv, w[v]);
    }
#else
    for (int v = 0; v < NV; ++v) {
      const int8_t* wp = W + v * pstride + (size_t)g * 4 * VW;
      for (int s = 0; s < S; ++s) {
        const uint8_t* xp = xq + s * xqs + 4 * g;
        for (int r = 0; r < VW; ++r)
          for (int k = 0; k < 4; ++k) acc[s][v][r] += (int32_t)wp[4 * r + k] * (int32_t)xp[k];
      }
    }
#endif
  }
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const vi c = *reinterpret_cast<const vi*>(cs + v * VW);
      const vf f = __builtin_convertvector(acc[s][v] - c, vf);
      vstore(y + s * ys + v * VW, vload(init + s * is + v * VW) + vload(sr + v * VW) * (f * sx[s]));
    }
}

// Rows [p0, p1) panels of a quantized matrix for S streams (see matvec; the
// block loop is written out in both: a shared generic-lambda version measured
// ~15% slower at batch 1, int8).
template <int S>
void matvec_q(const int8_t* W, int p0, int p1, int cols, const uint8_t* xq, int xqs,
              const float* sx, float* y, int ys, const float* init, int is, const float* sr,
              const int32_t* cs) {
  constexpr int NV = panels_per_block<S>();
  const size_t ps = (size_t)cols * VW;
  int p = p0;
  for (; p + NV <= p1; p += NV)
    mvq_panels<NV, S>(W + p * ps, ps, cols, xq, xqs, sx, y + p * VW, ys, init + p * VW, is,
                      sr + p * VW, cs + p * VW);
  if (NV > 4)
    for (; p + 4 <= p1; p += 4)
      mvq_panels<4, S>(W + p * ps, ps, cols, xq, xqs, sx, y + p * VW, ys, init + p * VW, is,
                       sr + p * VW, cs + p * VW);
  if (NV > 2)
    for (; p + 2 <= p1; p += 2)
      mvq_panels<2, S>(W + p * ps, ps, cols, xq, xqs, sx, y + p * VW, ys, init + p * VW, is,
                       sr + p * VW, cs + p * VW);
  for (; p < p1; ++p)
    mvq_panels<1, S>(W + p * ps, ps, cols, xq, xqs, sx, y + p * VW, ys, init + p * VW, is,
                     sr + p * VW, cs + p * VW);
}

}  // namespace wn
