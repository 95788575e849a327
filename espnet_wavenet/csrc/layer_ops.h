// The matrix products of a layer per weight precision: Dense (float32/float16), Quant (int8).
#pragma once

#include <cstring>
#include <vector>

#include "int8.h"
#include "wavenet_abi.h"

namespace wn {

// The three products of a layer, float weights (float32 or float16).  Each
// conv row sums from the conditioning over the older taps, then the newest
// (one accumulation chain, so splitting it at the newest tap changes nothing).
template <typename WT>
struct Dense {
  typedef WT Head;
  const WnModel& m;
  Dense(const WnModel& m, int) : m(m) {}
  // Tap k of layer l: its own packed (2 Hp, Rp) matrix, so that the newest
  // tap (thread A's) and the older ones (thread B's) are each contiguous: with
  // the taps side by side in one panel A read half of every panel, which
  // streamed 0.87x as fast from L3 where L2 holds less than the weights
  // (microbenchmark of A's products, Zen 3, 512 KB L2).
  const WT* conv(int l, int k) const {
    return static_cast<const WT*>(m.wconv) + ((size_t)l * m.K + k) * 2 * m.Hp * m.Rp;
  }
  // past = init + older taps (taps: (K - 1) Rp per stream; none: past = init).
  // One accumulation chain as one product would: each tap starts from the last
  // one's float sums.
  void conv_old(int l, int nb, const float* taps, float* past, const float* init, int is) {
    const int G2 = 2 * m.Hp, st = (m.K - 1) * m.Rp;
    if (m.K == 1)
      for (int s = 0; s < nb; ++s) std::memcpy(past + s * G2, init + s * is, sizeof(float) * G2);
    for (int k = 0; k < m.K - 1; ++k)
      matvec_n<WT>(nb, conv(l, k), 0, G2 / VW, m.Rp, m.Rp, taps + k * m.Rp, st, past, G2,
                   k == 0 ? init : past, k == 0 ? is : G2);
  }
  // a = past + newest tap (h: Rp per stream).
  void conv_new(int l, int nb, const float* h, float* a, const float* past) {
    const int G2 = 2 * m.Hp;
    matvec_n<WT>(nb, conv(l, m.K - 1), 0, G2 / VW, m.Rp, m.Rp, h, m.Rp, a, G2, past, G2);
  }
  // Rows [p0, p1) panels of the residual/skip projection of z (Hp per stream).
  void rs(int l, int p0, int p1, int nb, const float* z, float* y, int ys) {
    const int RS = m.Rp + m.Sp;
    matvec_n<WT>(nb, static_cast<const WT*>(m.wrs) + (size_t)l * RS * m.Hp, p0, p1, m.Hp, m.Hp,
                 z, m.Hp, y, ys, m.brs + (size_t)l * RS, 0);
  }
};

// The same with int8 weights (see quantize): activations quantized per vector.
struct Quant {
  typedef float Head;
  const WnModel& m;
  std::vector<uint8_t> xq;
  std::vector<float> sx;
  Quant(const WnModel& m, int nb)
      : m(m), xq((size_t)nb * std::max(m.Rp, m.Hp)), sx(nb) {}
  void mv(int nb, const int8_t* W, const float* sr, const int32_t* cs, int p0, int p1,
          int cols, const float* x, int xs, float* y, int ys, const float* init, int is) {
    for (int s = 0; s < nb; ++s) sx[s] = quantize(x + (size_t)s * xs, cols, xq.data() + s * cols);
    for_blocks(nb, [&](int g, auto S) {
      matvec_q<decltype(S)::value>(W, p0, p1, cols, xq.data() + (size_t)g * cols, cols,
                                   sx.data() + g, y + (size_t)g * ys, ys,
                                   init + (size_t)g * is, is, sr, cs);
    });
  }
  void tap(int l, int k, int nb, const float* x, int xs, float* y, const float* init, int is) {
    const int G2 = 2 * m.Hp;
    const size_t i = (size_t)l * m.K + k;
    mv(nb, m.qconv + i * G2 * m.Rp, m.qconv_s + i * G2, m.qconv_c + i * G2, 0, G2 / VW, m.Rp,
       x, xs, y, G2, init, is);
  }
  void conv_old(int l, int nb, const float* taps, float* past, const float* init, int is) {
    const int G2 = 2 * m.Hp, st = (m.K - 1) * m.Rp;
    if (m.K == 1)
      for (int s = 0; s < nb; ++s) std::memcpy(past + s * G2, init + s * is, sizeof(float) * G2);
    for (int k = 0; k < m.K - 1; ++k)
      tap(l, k, nb, taps + k * m.Rp, st, past, k == 0 ? init : past, k == 0 ? is : G2);
  }
  void conv_new(int l, int nb, const float* h, float* a, const float* past) {
    tap(l, m.K - 1, nb, h, m.Rp, a, past, 2 * m.Hp);
  }
  void rs(int l, int p0, int p1, int nb, const float* z, float* y, int ys) {
    const int RS = m.Rp + m.Sp;
    const size_t i = (size_t)l * RS;
    mv(nb, m.qrs + i * m.Hp, m.qrs_s + i, m.qrs_c + i, p0, p1, m.Hp, z, m.Hp, y, ys,
       m.brs + i, 0);
  }
};

}  // namespace wn
