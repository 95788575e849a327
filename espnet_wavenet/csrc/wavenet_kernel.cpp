// Autoregressive WaveNet generation on the CPU: the library's entry points.
//
// One call runs ``n_steps`` samples of a whole batch: for every sample all
// layers, the output head and the sampling, with no Python in between.
// Weights arrive packed by espnet_wavenet/generation/cpu/packing.py: every
// matrix is cut into panels of VW output rows (one vector register), each
// panel stored column by column, so a matrix-vector product streams memory
// linearly and keeps panel-row accumulators in registers.  Several streams
// (utterances) of a batch are processed by one thread together, so each weight
// is loaded once per step for all of them.  The per-layer conditioning (aux
// projection + speaker term + conv bias) is projected on the Python side.
//
// Plain C ABI (wavenet_abi.h, loaded with ctypes): no torch headers, so it
// compiles in a few seconds with any g++ and does not depend on the torch ABI.
// The parts, each in its header: vec.h (vectors, math), matvec.h and int8.h
// (products), sampling.h, step.h (a step's pieces), layer_ops.h (a layer's
// products per precision), batched.h (one thread, many streams), pipeline.h
// (one stream on two threads), profile.h.

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "batched.h"
#include "layer_ops.h"
#include "pipeline.h"
#include "train_stack.h"
#include "wavenet_abi.h"

namespace {
using namespace wn;

typedef void (*RangeFn)(const WnModel&, const WnCall&, int, int);

// The runner of a precision: ``pipe`` the two-thread pipeline, else one thread.
RangeFn runner(const WnModel& m, bool pipe) {
  if (m.prec == WN_PREC_INT8) return pipe ? run_pipe<Quant> : run_range<Quant>;
  if (m.prec == WN_PREC_FLOAT16) return pipe ? run_pipe<Dense<uint16_t>> : run_range<Dense<uint16_t>>;
  return pipe ? run_pipe<Dense<float>> : run_range<Dense<float>>;
}
}  // namespace

extern "C" {

int wn_abi_version() { return WN_ABI_VERSION; }

// SHA-256 of the sources as the build saw them (-DWN_SOURCE_SHA256=...): an
// installed kernel built from another version of them is stale.
#ifndef WN_SOURCE_SHA256
#define WN_SOURCE_SHA256 ""
#endif
const char* wn_source_sha256() { return WN_SOURCE_SHA256; }

// Rows per weight panel (the vector width): the packing follows it.
int wn_panel_rows() { return VW; }

// sizeof of the ABI structs (0: WnModel, 1: WnCall): the Python side checks its
// ctypes layout against them when it loads the library.
int64_t wn_struct_size(int which) {
  return which == 0   ? (int64_t)sizeof(WnModel)
         : which == 1 ? (int64_t)sizeof(WnCall)
         : which == 2 ? (int64_t)sizeof(WnStack)
                      : -1;
}

int wn_int8_path() { return INT8_PATH; }

int wn_int8_matvec(const int8_t* W, int n_panels, int cols, int n_streams, const uint8_t* xq,
                   float* y) {
  if (n_panels < 1 || cols < 4 || cols % 4 || n_streams < 1) return 1;
  const size_t rows = (size_t)n_panels * VW;
  const std::vector<float> zero(rows, 0.0f), one(rows, 1.0f), sx(n_streams, 1.0f);
  // The rows' 128 * sum(w), as packing.py gives it, then added back: W xq.
  std::vector<int32_t> offset(rows, 0);
  for (int p = 0; p < n_panels; ++p)
    for (int g = 0; g < cols / 4; ++g)
      for (int r = 0; r < VW; ++r)
        for (int k = 0; k < 4; ++k)
          offset[(size_t)p * VW + r] += 128 * W[(((size_t)p * (cols / 4) + g) * VW + r) * 4 + k];
  for_blocks(n_streams, [&](int g, auto S) {
    matvec_q<decltype(S)::value>(W, 0, n_panels, cols, xq + (size_t)g * cols, cols,
                                 sx.data() + g, y + g * rows, (int)rows, zero.data(), 0,
                                 one.data(), offset.data());
  });
  for (int s = 0; s < n_streams; ++s)
    for (size_t i = 0; i < rows; ++i) y[s * rows + i] += (float)offset[i];
  return 0;
}

// Nanoseconds per two-thread barrier (a measurement aid for the profile).
double wn_barrier_bench(int64_t n) {
  Barrier2 bar;
  auto body = [&](int tid) {
    for (int64_t k = 1; k <= n; ++k) bar.wait(tid, k);
  };
  auto t0 = std::chrono::steady_clock::now();
  std::thread other(body, 1);
  body(0);
  other.join();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)n;
}

double wn_read_bench(int64_t bytes, int n_threads, int rounds) {
  const size_t n = std::max<int64_t>(bytes, 4 * VW * sizeof(float)) / sizeof(float) / (4 * VW) * (4 * VW);
  std::vector<std::vector<float>> bufs(n_threads, std::vector<float>(n, 1.0f));
  std::vector<float> sink(n_threads);
  auto body = [&](int t, int r_end) {
    vf a[4] = {};
    for (int r = 0; r < r_end; ++r)
      for (size_t i = 0; i < n; i += 4 * VW)
        for (int k = 0; k < 4; ++k) a[k] += vload(bufs[t].data() + i + k * VW);
    const vf v = a[0] + a[1] + a[2] + a[3];
    sink[t] = v[0];  // the sums are used: the loads stay
  };
  for (int t = 0; t < n_threads; ++t) body(t, 1);  // one pass: into the caches
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < n_threads; ++t) pool.emplace_back(body, t, rounds);
  body(0, rounds);
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile float keep = sink[0];
  (void)keep;
  return (double)n * sizeof(float) * rounds * n_threads / s / 1e9;
}

// Copies the profile counters into out[0:WN_P_N] and resets them; returns the
// number of slots (0 when not built with -DWN_PROFILE).
int wn_profile(uint64_t* out) {
#if defined(WN_PROFILE) && defined(__x86_64__)
  for (int i = 0; i < WN_P_N; ++i) out[i] = g_prof[i].exchange(0);
  return WN_P_N;
#else
  (void)out;
  return 0;
#endif
}

int wn_run(const WnModel* m, const WnCall* c) {
  if (m->Rp % VW || m->Hp % VW || m->Sp % VW || m->Op % VW) return 1;
  if (c->cond_mode && (!c->frames || !c->fidx || !c->coef || !c->base)) return 2;
  if (m->prec == WN_PREC_INT8 && (!m->qconv || !m->qrs)) return 3;
  // Pipelined pairs of threads only when the batch cannot keep every thread
  // busy: otherwise whole streams per thread need no exchanges and run faster
  // (measured).  Each pair or thread takes a contiguous, balanced range.
  const bool pipe = c->split && c->n_threads >= 2 && c->B < c->n_threads;
  RangeFn fn = runner(*m, pipe);
  const int nt = std::max(1, std::min(pipe ? c->n_threads / 2 : c->n_threads, c->B));
  std::vector<std::thread> pool;
  int b = 0;
  for (int i = 0; i < nt; ++i) {
    const int n = c->B / nt + (i < c->B % nt ? 1 : 0);
    if (i == nt - 1)
      fn(*m, *c, b, b + n);
    else
      pool.emplace_back(fn, std::cref(*m), std::cref(*c), b, b + n);
    b += n;
  }
  for (auto& th : pool) th.join();
  return 0;
}

int wn_stack_forward(const WnStack* s) {
  if (int err = stack_check(*s)) return err;
  const StackDims d = dims_of(*s);
  for_elements(s->B, s->n_threads, [&](int, int b) {
    stack_forward_one(*s, d, b);
#if defined(__SSE__)
    _mm_sfence();  // the streamed stores, visible before the call returns
#endif
  });
  return 0;
}

int wn_stack_backward(const WnStack* s) {
  if (int err = stack_check(*s)) return err;
  const StackDims d = dims_of(*s);
  const int nt = std::max(1, std::min<int>(s->n_threads, s->B));
  std::vector<StackGrads> grads(nt, StackGrads(d));
  for_elements(s->B, nt, [&](int i, int b) { stack_backward_one(*s, d, b, grads[i]); });
  auto sum_into = [&](float* out, Buf StackGrads::*field) {
    if (!out) return;
    const size_t n = (grads[0].*field).size();
    for (size_t k = 0; k < n; ++k) {
      float v = 0.0f;
      for (auto& g : grads) v += (g.*field)[k];
      out[k] = v;
    }
  };
  sum_into(s->d_w_dil, &StackGrads::w_dil);
  sum_into(s->d_w_out, &StackGrads::w_out);
  sum_into(s->d_b_res, &StackGrads::b_res);
  sum_into(s->d_coef, &StackGrads::coef);
  return 0;
}

}  // extern "C"
