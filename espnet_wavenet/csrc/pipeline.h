// The two-thread pipeline: one stream (or a few) on a pair of cores.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "profile.h"
#include "step.h"

namespace wn {

// ------------------------------------------------------ two-thread pipeline
// The step's work is cut along the dependency chain, not along the rows.  Of a
// layer's dilated conv, only the newest tap depends on the sample just drawn:
// the older taps' product (plus the conditioning) for step t+1 can be formed as
// soon as step t's layer input exists, a whole step before it is needed.  So
// thread A runs the critical chain (newest tap, gate, residual, skips, head,
// sampling) and thread B, one layer behind it, the older taps of the next step
// (and the skip projections of the first few layers).  A rarely waits for B:
// what it reads from B was finished about a step earlier.  Each thread reads
// only its own weights, which stay in its L2.  Both paths run the same
// products in the same order, so they round the same.

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

struct alignas(64) Flag {
  std::atomic<int64_t> v{0};
  char pad[64 - sizeof(std::atomic<int64_t>)];
};

// Spin until ``f`` reaches ``k``; after a while yield the core (a loaded
// machine may have descheduled the other thread, and spinning only delays it).
// Returns the value seen.
inline int64_t wait_for(const Flag& f, int64_t k) {
  int spins = 0;
  int64_t v;
  while ((v = f.v.load(std::memory_order_acquire)) < k) {
    cpu_relax();
    if (++spins > 256) {
      std::this_thread::yield();
      spins = 0;
    }
  }
  return v;
}

// A counter's last seen value: the shared line is read only when that value
// is not enough (each read of a line the other core wrote costs a transfer).
struct Seen {
  const Flag& f;
  int64_t v = 0;
  explicit Seen(const Flag& f) : f(f) {}
  void wait(int64_t k) {
    if (v < k) v = wait_for(f, k);
  }
};

// Two-party barrier (only for wn_barrier_bench: the cost of one exchange).
struct Barrier2 {
  Flag f[2];
  void wait(int tid, int64_t k) {
    f[tid].v.store(k, std::memory_order_release);
    wait_for(f[1 - tid], k);
  }
};


struct PipeShared {
  Flag prog;  // A: layers gated, step * L + l + 1 (z and the ring input published)
  Flag olds;  // B: older-tap sums done, step * L + l + 1
  Flag lows;  // B: step + 1 when that step's partial skip sum (layers < lo) is done
  std::vector<float> past;     // [2 (step parity)][L][nb][2 Hp]
  std::vector<float> z;        // [L][nb][Hp]
  std::vector<float> skip_lo;  // [nb][Sp]
  PipeShared(const WnModel& m, int nb)
      : past((size_t)2 * m.L * nb * 2 * m.Hp, 0.0f), z((size_t)m.L * nb * m.Hp, 0.0f),
        skip_lo((size_t)nb * m.Sp, 0.0f) {}
};

// Thread A: per layer the newest tap, gate, residual and (layers >= lo) skip;
// then the head and the sampling.
template <typename Ops>
void pipe_a(const WnModel& m, const WnCall& c, int b0, int nb, PipeShared& sh) {
  const int L = m.L, Rp = m.Rp, Hp = m.Hp, Sp = m.Sp, G2 = 2 * Hp, RS = Rp + Sp;
  const int lo = skip_split(m);
  Ops ops(m, nb);
  Scratch w(m, nb);
  Seen olds(sh.olds), lows(sh.lows);
  for (int step = 0; step < c.n_steps; ++step) {
    const int64_t t = c.t0 + step;
    for (int s = 0; s < nb; ++s) embed(m, c.prev_cls[b0 + s], c.prev_x[b0 + s], &w.h[s * Rp]);
    std::fill(w.skip.begin(), w.skip.end(), 0.0f);
    const float* past = sh.past.data() + (size_t)(step & 1) * L * nb * G2;
    for (int l = 0; l < L; ++l) {
      for (int s = 0; s < nb; ++s) write_ring(c, b0 + s, l, t, &w.h[s * Rp], Rp);
      {
        WN_PROF(WN_P_A_WAIT);
        olds.wait((int64_t)step * L + l + 1);
      }
      if (l + 1 < L) prefetch_lines(past + (size_t)(l + 1) * nb * G2, (size_t)nb * G2);
      {
        WN_PROF(WN_P_A_CONV);
        ops.conv_new(l, nb, w.h.data(), w.a.data(), past + (size_t)l * nb * G2);
      }
      float* z = sh.z.data() + (size_t)l * nb * Hp;
      {
        WN_PROF(WN_P_A_GATE);
        for (int s = 0; s < nb; ++s) gate(&w.a[s * G2], z + s * Hp, Hp);
      }
      sh.prog.v.store((int64_t)step * L + l + 1, std::memory_order_release);
      // Residual rows (none after the last layer) and, from layer lo, skip rows.
      const int p0 = l < L - 1 ? 0 : Rp / VW, p1 = l < lo ? Rp / VW : RS / VW;
      if (p0 < p1) {
        WN_PROF(WN_P_A_RS);
        ops.rs(l, p0, p1, nb, z, w.r.data(), RS);
      }
      for (int s = 0; s < nb; ++s) {
        if (l < L - 1) residual(&w.h[s * Rp], &w.r[s * RS], Rp);
        if (l >= lo) accumulate(&w.skip[s * Sp], &w.r[s * RS + Rp], Sp);
      }
      if (l == L - 2 && lo > 0) prefetch_lines(sh.skip_lo.data(), (size_t)nb * Sp);
    }
    if (lo > 0) {
      WN_PROF(WN_P_A_WAIT);
      lows.wait(step + 1);
      accumulate(w.skip.data(), sh.skip_lo.data(), nb * Sp);
    }
    {
      WN_PROF(WN_P_A_HEAD);
      head<typename Ops::Head>(m, nb, w.skip.data(), w.o1.data(), w.lg.data());
    }
    WN_PROF(WN_P_A_DRAW);
    for (int s = 0; s < nb; ++s) draw(m, c, b0 + s, step, &w.lg[s * m.Op], w.smp.data());
  }
  WN_PROF_FLUSH();
}

// Thread B: the next step's older taps and the first layers' skips.
template <typename Ops>
void pipe_b(const WnModel& m, const WnCall& c, int b0, int nb, PipeShared& sh) {
  const int L = m.L, Rp = m.Rp, Hp = m.Hp, Sp = m.Sp, G2 = 2 * Hp;
  const int lo = skip_split(m);
  Ops ops(m, nb);
  Scratch w(m, nb);
  const size_t pstride = (size_t)L * nb * G2;
  // Older taps of layer l for local step i into that step's parity buffer.
  auto older = [&](int64_t i, int l) {
    older_taps(m, c, b0, nb, l, c.t0 + i, w.taps.data());
    int is;
    const float* init = cond_init(m, c, b0, nb, i, l, w.ci.data(), is);
    ops.conv_old(l, nb, w.taps.data(),
                 sh.past.data() + (size_t)(i & 1) * pstride + (size_t)l * nb * G2, init, is);
    sh.olds.v.store(i * L + l + 1, std::memory_order_release);
  };
  Seen prog(sh.prog);
  for (int l = 0; l < L; ++l) older(0, l);
  for (int step = 0; step < c.n_steps; ++step) {
    for (int l = 0; l < L; ++l) {
      {
        WN_PROF(WN_P_B_WAIT);
        prog.wait((int64_t)step * L + l + 1);
      }
      if (l < lo) {
        WN_PROF(WN_P_B_SKIPS);
        // Safe to zero at layer 0: A read the previous step's sum before it
        // started this step (whose layer 0 it has published).
        if (l == 0) std::fill(sh.skip_lo.begin(), sh.skip_lo.end(), 0.0f);
        ops.rs(l, Rp / VW, (Rp + Sp) / VW, nb, sh.z.data() + (size_t)l * nb * Hp,
               w.r.data() - Rp, Sp);
        for (int s = 0; s < nb; ++s) accumulate(&sh.skip_lo[s * Sp], &w.r[s * Sp], Sp);
        if (l == lo - 1) sh.lows.v.store(step + 1, std::memory_order_release);
      }
      WN_PROF(WN_P_B_OLDER);
      if (step + 1 < c.n_steps) {
        // The next layer's older taps (A wrote them, most a few steps ago):
        // their cross-core transfer overlaps this layer's products.
        for (int s = 0; l + 1 < L && s < nb; ++s)
          for (int k = 0; k < m.K - 1; ++k)
            prefetch_lines(ring_tap(m, c, b0 + s, l + 1, c.t0 + step + 1, k), Rp);
        older(step + 1, l);
      }
    }
  }
  WN_PROF_FLUSH();
}

template <typename Ops>
void run_pipe(const WnModel& m, const WnCall& c, int b0, int b1) {
#if defined(WN_PROFILE) && defined(__x86_64__)
  const uint64_t t0 = __rdtsc();
#endif
  PipeShared sh(m, b1 - b0);
  std::thread other(pipe_b<Ops>, std::cref(m), std::cref(c), b0, b1 - b0, std::ref(sh));
  pipe_a<Ops>(m, c, b0, b1 - b0, sh);
  other.join();
#if defined(WN_PROFILE) && defined(__x86_64__)
  g_prof[WN_P_TOTAL] += __rdtsc() - t0;
  g_prof[WN_P_STEPS] += c.n_steps;
#endif
}

}  // namespace wn
