// Matrix-vector products over packed weight panels (float32 and float16 weights).
#pragma once

#include <cstddef>
#include <type_traits>

#include "vec.h"

namespace wn {

// y[s] = init[s] + W x[s] for NV consecutive panels (16 * NV rows).
template <typename WT, int NV, int S>
inline void mv_panels(const WT* W, size_t pstride, int cols, const float* x, int xs,
                      float* y, int ys, const float* init, int is) {
  vf acc[S][NV];
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[s][v] = vload(init + s * is + v * VW);
  for (int j = 0; j < cols; ++j) {
    vf w[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) w[v] = vload(W + v * pstride + (size_t)j * VW);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const float xv = x[s * xs + j];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[s][v] += w[v] * xv;
    }
  }
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) vstore(y + s * ys + v * VW, acc[s][v]);
}

template <int S>
constexpr int panels_per_block() {
#if defined(__AVX512F__)
  return S == 1 ? 8 : (S == 2 ? 4 : (S <= 4 ? 4 : 2));
#else
  return S == 1 ? 6 : (S == 2 ? 4 : 2);
#endif
}

// Rows [p0, p1) panels of a packed matrix, for S streams.  ``W`` may point at a
// column offset inside the panels: ``cols`` columns are read out of ``ld``.
template <typename WT, int S>
void matvec(const WT* W, int p0, int p1, int cols, int ld, const float* x, int xs,
            float* y, int ys, const float* init, int is) {
  constexpr int NV = panels_per_block<S>();
  const size_t ps = (size_t)ld * VW;
  int p = p0;
  for (; p + NV <= p1; p += NV)
    mv_panels<WT, NV, S>(W + p * ps, ps, cols, x, xs, y + p * VW, ys, init + p * VW, is);
  // Remainders in blocks of 4 and 2 panels: independent accumulator chains
  // hide the FMA latency (one panel at a time is latency bound).
  if (NV > 4)
    for (; p + 4 <= p1; p += 4)
      mv_panels<WT, 4, S>(W + p * ps, ps, cols, x, xs, y + p * VW, ys, init + p * VW, is);
  if (NV > 2)
    for (; p + 2 <= p1; p += 2)
      mv_panels<WT, 2, S>(W + p * ps, ps, cols, x, xs, y + p * VW, ys, init + p * VW, is);
  for (; p < p1; ++p)
    mv_panels<WT, 1, S>(W + p * ps, ps, cols, x, xs, y + p * VW, ys, init + p * VW, is);
}

// Runs f(g, std::integral_constant<int, S>) over register blocks of streams.
template <class F>
inline void for_blocks(int n, F&& f) {
  for (int g = 0; g < n; g += SMAX) {
    switch (std::min(SMAX, n - g)) {
      case 1: f(g, std::integral_constant<int, 1>()); break;
      case 2: f(g, std::integral_constant<int, 2>()); break;
      case 3: f(g, std::integral_constant<int, 3>()); break;
      case 4: f(g, std::integral_constant<int, 4>()); break;
#if defined(__AVX512F__)
      case 5: f(g, std::integral_constant<int, 5>()); break;
      case 6: f(g, std::integral_constant<int, 6>()); break;
      case 7: f(g, std::integral_constant<int, 7>()); break;
      case 8: f(g, std::integral_constant<int, 8>()); break;
#endif
    }
  }
}

// Matrix-vector products for ``n`` streams (stream s: x + s * xs, y + s * ys).
template <typename WT>
void matvec_n(int n, const WT* W, int p0, int p1, int cols, int ld, const float* x, int xs,
              float* y, int ys, const float* init, int is) {
  for_blocks(n, [&](int g, auto S) {
    matvec<WT, decltype(S)::value>(W, p0, p1, cols, ld, x + (size_t)g * xs, xs,
                                   y + (size_t)g * ys, ys, init + (size_t)g * is, is);
  });
}

}  // namespace wn
