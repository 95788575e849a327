// The batched runner: one thread runs every layer for a range of streams.
#pragma once

#include <algorithm>

#include "step.h"

namespace wn {

// One thread, streams [b0, b1): every layer for every stream, step by step.
template <typename Ops>
void run_range(const WnModel& m, const WnCall& c, int b0, int b1) {
  const int nb = b1 - b0, L = m.L, Rp = m.Rp, Hp = m.Hp, Sp = m.Sp, RS = Rp + Sp;
  Ops ops(m, nb);
  Scratch w(m, nb);
  for (int step = 0; step < c.n_steps; ++step) {
    const int64_t t = c.t0 + step;
    for (int s = 0; s < nb; ++s) embed(m, c.prev_cls[b0 + s], c.prev_x[b0 + s], &w.h[s * Rp]);
    std::fill(w.skip.begin(), w.skip.end(), 0.0f);
    std::fill(w.skip2.begin(), w.skip2.end(), 0.0f);
    const int lo = skip_split(m);
    for (int l = 0; l < L; ++l) {
      for (int s = 0; s < nb; ++s) write_ring(c, b0 + s, l, t, &w.h[s * Rp], Rp);
      older_taps(m, c, b0, nb, l, t, w.taps.data());
      int is;
      const float* init = cond_init(m, c, b0, nb, step, l, w.ci.data(), is);
      ops.conv_old(l, nb, w.taps.data(), w.past.data(), init, is);
      ops.conv_new(l, nb, w.h.data(), w.a.data(), w.past.data());
      for (int s = 0; s < nb; ++s) gate(&w.a[s * 2 * Hp], &w.z[s * Hp], Hp);
      ops.rs(l, 0, RS / VW, nb, w.z.data(), w.r.data(), RS);
      for (int s = 0; s < nb; ++s) {
        residual(&w.h[s * Rp], &w.r[s * RS], Rp);
        accumulate(&(l < lo ? w.skip2 : w.skip)[s * Sp], &w.r[s * RS + Rp], Sp);
      }
    }
    accumulate(w.skip.data(), w.skip2.data(), nb * Sp);
    head<typename Ops::Head>(m, nb, w.skip.data(), w.o1.data(), w.lg.data());
    for (int s = 0; s < nb; ++s) draw(m, c, b0 + s, step, &w.lg[s * m.Op], w.smp.data());
  }
}

}  // namespace wn
