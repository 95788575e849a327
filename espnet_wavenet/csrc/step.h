// The parts of one generation step: conditioning, embedding, gate, residual,
// ring buffers, output head, drawing and per-stream scratch.
#pragma once

#include <cstring>
#include <vector>

#include "matvec.h"
#include "sampling.h"
#include "wavenet_abi.h"

namespace wn {

// Conditioning rows [r0, r1) of layer l for stream b at local step i (frame mode).
inline void cond_rows(const WnModel& m, const WnCall& c, int b, int64_t i, int l,
                      int r0, int r1, float* dst) {
  const int G2 = 2 * m.Hp;
  const size_t LW = (size_t)m.L * G2;
  const float* base = c.base + b * LW + (size_t)l * G2;
  const float* fr = c.frames + b * c.frames_bstride + (size_t)c.fidx[i] * LW + (size_t)l * G2;
  const float* cf = c.coef + b * c.coef_bstride + i * c.n_coef;
  int r = r0;
  // Four rows' vectors at a time: four independent chains over the coefficients
  // (one chain at a time is bound by the FMA latency).
  for (; r + 4 * VW <= r1; r += 4 * VW) {
    vf acc[4];
    for (int v = 0; v < 4; ++v) acc[v] = vload(base + r + v * VW);
    for (int k = 0; k < c.n_coef; ++k)
      for (int v = 0; v < 4; ++v) acc[v] += vload(fr + k * LW + r + v * VW) * cf[k];
    for (int v = 0; v < 4; ++v) vstore(dst + r + v * VW, acc[v]);
  }
  for (; r < r1; r += VW) {
    vf acc = vload(base + r);
    for (int k = 0; k < c.n_coef; ++k) acc += vload(fr + k * LW + r) * cf[k];
    vstore(dst + r, acc);
  }
}

// Conditioning of layer l at local step i for streams [b0, b0 + nb): a pointer
// with its stream stride ``is`` (computed into ``ci`` in frame mode).
inline const float* cond_init(const WnModel& m, const WnCall& c, int b0, int nb, int64_t i,
                              int l, float* ci, int& is) {
  const int G2 = 2 * m.Hp;
  if (c.cond_mode) {
    for (int s = 0; s < nb; ++s) cond_rows(m, c, b0 + s, i, l, 0, G2, ci + s * G2);
    is = G2;
    return ci;
  }
  is = (int)c.cond_bstride;
  return c.cond + i * c.cond_tstride + b0 * c.cond_bstride + (size_t)l * G2;
}

inline void embed(const WnModel& m, int cls, float x, float* h) {
  if (m.input_type == WN_INPUT_CATEGORICAL) {
    std::memcpy(h, m.emb_w + (size_t)cls * m.Rp, sizeof(float) * m.Rp);
  } else {
    for (int i = 0; i < m.Rp; i += VW)
      vstore(h + i, vload(m.emb_w + i) * x + vload(m.emb_b + i));
  }
}

// Gate rows: filter half (n rows) then gate half.
inline void gate(const float* a, float* z, int n) {
  for (int i = 0; i < n; i += VW)
    vstore(z + i, vgate(vload(a + i), vload(a + n + i)));
}

inline void residual(float* h, const float* r, int Rp) {
  const float sq = std::sqrt(0.5f);
  for (int i = 0; i < Rp; i += VW) vstore(h + i, (vload(h + i) + vload(r + i)) * sq);
}

inline void accumulate(float* sk, const float* r, int n) {
  for (int i = 0; i < n; i += VW) vstore(sk + i, vload(sk + i) + vload(r + i));
}

inline void relu(float* o, int n, float scale = 1.0f) {
  for (int i = 0; i < n; i += VW) {
    vf v = vload(o + i) * scale;
    vstore(o + i, v > 0.0f ? v : 0.0f);
  }
}

inline void write_ring(const WnCall& c, int b, int l, int64_t t, const float* h, int Rp) {
  float* ring = c.rings + b * c.ring_bstride + c.ring_off[l];
  std::memcpy(ring + (t & c.ring_mask[l]) * Rp, h, sizeof(float) * Rp);
}

// Layer l's input at absolute time t - (K - 1 - k) d (tap k) of stream b.
inline const float* ring_tap(const WnModel& m, const WnCall& c, int b, int l, int64_t t, int k) {
  const float* ring = c.rings + b * c.ring_bstride + c.ring_off[l];
  return ring + ((t - (m.K - 1 - k) * (int64_t)m.dil[l]) & c.ring_mask[l]) * m.Rp;
}

// The K - 1 older taps of layer l at absolute time t, per stream.
inline void older_taps(const WnModel& m, const WnCall& c, int b0, int nb, int l, int64_t t,
                       float* taps) {
  const int Rp = m.Rp, st = (m.K - 1) * Rp;
  for (int s = 0; s < nb; ++s)
    for (int k = 0; k < m.K - 1; ++k)
      std::memcpy(taps + s * st + k * Rp, ring_tap(m, c, b0 + s, l, t, k), sizeof(float) * Rp);
}

// Software prefetch of n floats (data the other thread wrote).
inline void prefetch_lines(const float* p, size_t n) {
#if defined(__x86_64__)
  for (size_t i = 0; i < n; i += 16)  // a 64-byte line
    _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
#else
  (void)p, (void)n;
#endif
}

// Skip sums -> logits (the output head), nb streams.
template <typename HT>
void head(const WnModel& m, int nb, float* skip, float* o1, float* lgs) {
  const int Sp = m.Sp, Op = m.Op;
  for (int s = 0; s < nb; ++s) relu(skip + s * Sp, Sp, m.skip_scale);
  matvec_n<HT>(nb, static_cast<const HT*>(m.w1), 0, Sp / VW, Sp, Sp, skip, Sp, o1, Sp, m.b1, 0);
  for (int s = 0; s < nb; ++s) relu(o1 + s * Sp, Sp);
  matvec_n<HT>(nb, static_cast<const HT*>(m.w2), 0, Op / VW, Sp, Sp, o1, Sp, lgs, Op, m.b2, 0);
}

// Draw stream b's sample of ``step`` from its logits and set its next input.
inline void draw(const WnModel& m, const WnCall& c, int b, int step, const float* lg,
                 float* work) {
  if (c.logits)
    std::memcpy(c.logits + b * c.logits_bstride + (size_t)step * m.O, lg, sizeof(float) * m.O);
  if (c.forced_cls) {  // teacher forcing: the true sample, nothing to draw
    c.prev_cls[b] = c.forced_cls[b * c.forced_bstride + step];
    c.prev_x[b] = c.out[b * c.out_bstride + step] = c.forced_x[b * c.forced_bstride + step];
    return;
  }
  const float* u = c.noise + b * c.noise_bstride + (int64_t)step * c.noise_dim;
  int cls = 0;
  const float x = sample_one(m, c, lg, u, &cls, work);
  c.out[b * c.out_bstride + step] = x;
  c.prev_cls[b] = cls;
  c.prev_x[b] = x;
}

// Per-stream scratch, all rows padded.
struct Scratch {
  std::vector<float> h, taps, ci, past, a, z, r, skip, skip2, o1, lg, smp;
  Scratch(const WnModel& m, int nb)
      : h((size_t)nb * m.Rp), taps((size_t)nb * std::max(1, m.K - 1) * m.Rp),
        ci((size_t)nb * 2 * m.Hp), past((size_t)nb * 2 * m.Hp), a((size_t)nb * 2 * m.Hp),
        z((size_t)nb * m.Hp), r((size_t)nb * (m.Rp + m.Sp)), skip((size_t)nb * m.Sp),
        skip2((size_t)nb * m.Sp),
        o1((size_t)nb * m.Sp), lg((size_t)nb * m.Op), smp(4 * m.Op + 64) {}
};

// Quarters of the layers whose skips the pipeline's thread B projects
// (skip_split), every precision.  int8 had 2 until stop 33: 3 measured 1.06x /
// 1.10x / 1.11x faster on the quality config (AVX-512BW / AVX2 / AVX-512 VNNI
// builds) and 1.01-1.03x on the default one (batch 1, in-process A/B, medians
// of 10 pairs).  4 (all on B) measured 0.96x the time for float32 but 1.06x for
// float16 and 1.01x for int8 (Zen 4, stop 34): not taken.
constexpr int SKIP_SPLIT = 3;

// The skip sum is formed as two partial sums, layers [0, lo) and [lo, L), then
// added: in the pipeline, thread B projects the first lo layers' skips and A
// the rest (see run_pipe; lo balances the two threads' loads).
inline int skip_split(const WnModel& m) { return SKIP_SPLIT * m.L / 4; }

}  // namespace wn
