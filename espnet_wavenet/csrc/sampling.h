// Drawing one sample from the output head's logits (mu-law softmax, MoL, Gaussian).
#pragma once

#include "vec.h"
#include "wavenet_abi.h"

namespace wn {

// Index i with cdf[i-1] <= u * cdf[n-1] < cdf[i], like torch.searchsorted(right=True)
// on a float cumsum (torch accumulates cumsum in double on the CPU).  Whole
// blocks of 16 are skipped by their sums (cdf is monotone), so the serial
// double additions are ~n/16 + 16 rather than n.
inline int inverse_cdf(const float* p, int n, float u) {
  const int nb = n / VW;
  double bsum[64];
  double total = 0.0;
  for (int b = 0; b < nb && b < 64; ++b) {
    double acc = 0.0;
    for (int i = 0; i < VW; ++i) acc += p[b * VW + i];
    bsum[b] = acc;
  }
  const int full = std::min(nb, 64);
  for (int b = 0; b < full; ++b) total += bsum[b];
  for (int i = full * VW; i < n; ++i) total += p[i];
  const float thr = u * (float)total;
  double acc = 0.0;
  int i = 0;
  for (int b = 0; b < full && (float)(acc + bsum[b]) <= thr; ++b) acc += bsum[b], i += VW;
  for (; i < n; ++i) {
    acc += p[i];
    if ((float)acc > thr) break;
  }
  return std::min(i, n - 1);
}

inline float sample_one(const WnModel& m, const WnCall& c, const float* lg, const float* u,
                 int* cls_out, float* work) {
  if (m.dist == WN_DIST_MULAW) {
    int idx = 0;
    const int n = m.O;
    if (c.temperature <= 0.0f) {
      for (int i = 1; i < n; ++i)
        if (lg[i] > lg[idx]) idx = i;
    } else {
      const float tmp = c.temperature;
      const int nv = n / VW * VW;
      vf mv = splat(-INFINITY);
      for (int i = 0; i < nv; i += VW) {
        const vf x = vload(lg + i) / tmp;
        vstore(work + i, x);
        mv = mv > x ? mv : x;
      }
      float mx = hmax(mv);
      for (int i = nv; i < n; ++i) work[i] = lg[i] / tmp, mx = std::max(mx, work[i]);
      vf sv{};
      for (int i = 0; i < nv; i += VW) {
        const vf e = vexp(vload(work + i) - mx);
        vstore(work + i, e);
        sv += e;
      }
      float sum = 0.0f;
      for (int i = 0; i < VW; ++i) sum += sv[i];
      for (int i = nv; i < n; ++i) sum += (work[i] = std::exp(work[i] - mx));
      for (int i = 0; i < nv; i += VW) vstore(work + i, vload(work + i) / sum);
      for (int i = nv; i < n; ++i) work[i] /= sum;
      if (c.tail > 0.0f) {  // as torch's (p - tail).clamp(min=0): classes under it never drawn
        const vf tv = splat(c.tail), zero{};
        for (int i = 0; i < nv; i += VW) {
          const vf d = vload(work + i) - tv;
          vstore(work + i, d > zero ? d : zero);
        }
        for (int i = nv; i < n; ++i) work[i] = std::max(work[i] - c.tail, 0.0f);
      }
      idx = inverse_cdf(work, n, u[0]);
    }
    *cls_out = m.enc[idx];
    return m.dec[idx];
  }
  if (m.dist == WN_DIST_MOL) {
    const int M = m.n_mix;
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < M; ++i) mx = std::max(mx, lg[i]);
    for (int i = 0; i < M; ++i) sum += (work[i] = std::exp(lg[i] - mx));
    for (int i = 0; i < M; ++i) work[i] /= sum;
    const int k = inverse_cdf(work, M, u[0]);
    const float mean = lg[M + k];
    const float ls = std::max(lg[2 * M + k], c.log_scale_min);
    const float uu = std::min(std::max(u[1], 1e-5f), 1.0f - 1e-5f);
    const float x = mean + std::exp(ls) * (std::log(uu) - std::log1p(-uu));
    return std::min(std::max(x, -1.0f), 1.0f);
  }
  const float ls = std::max(lg[1], c.log_scale_min);
  const float x = lg[0] + std::exp(ls) * u[0];
  return std::min(std::max(x, -1.0f), 1.0f);
}

}  // namespace wn
