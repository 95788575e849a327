// Fast autoregressive WaveNet generation on the CPU.
//
// One call runs ``n_steps`` samples of a whole batch: for every sample all
// layers, the output head and the sampling, with no Python in between.
// Weights arrive packed by espnet_wavenet/generation/fast.py: every matrix is
// cut into panels of 16 output rows, each panel stored column by column, so a
// matrix-vector product streams memory linearly and keeps 16-row accumulators
// in registers.  Several streams (utterances) of a batch are processed by one
// thread together, so each weight is loaded once per step for all of them.
// The per-layer conditioning (aux projection + speaker term + conv bias) is
// precomputed by one batched matmul on the Python side and read here.
//
// Plain C ABI (loaded with ctypes): no torch headers, so it compiles in about a
// second with any g++ and does not depend on the torch ABI.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

constexpr int VW = 16;  // floats per vector and rows per weight panel
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t i16v __attribute__((vector_size(64)));
typedef uint16_t h16u __attribute__((vector_size(32), aligned(2)));
typedef uint32_t u16v __attribute__((vector_size(64)));

#if defined(__AVX512F__)
constexpr int SMAX = 8;  // streams per register block (32 vector registers)
#else
constexpr int SMAX = 4;  // AVX2: 16 registers, a v16 takes two
#endif

inline v16 vload(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void vstore(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
inline v16 splat(float x) { return v16{} + x; }

// Half-precision weights: 16 halves -> 16 floats (one F16C conversion).
inline v16 vload(const uint16_t* p) {
#if defined(__AVX512F__)
  return (v16)_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#elif defined(__F16C__)
  const __m128i* q = reinterpret_cast<const __m128i*>(p);
  __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(q)), hi = _mm256_cvtph_ps(_mm_loadu_si128(q + 1));
  v16 r;
  std::memcpy(&r, &lo, 32);
  std::memcpy(reinterpret_cast<char*>(&r) + 32, &hi, 32);
  return r;
#else
  v16 r;
  for (int i = 0; i < VW; ++i) r[i] = (float)(*reinterpret_cast<const _Float16*>(p + i));
  return r;
#endif
}

// exp with Cody-Waite range reduction and a degree-6 polynomial (~1 ulp).
inline v16 vexp(v16 x) {
  x = x < splat(88.0f) ? x : splat(88.0f);
  x = x > splat(-87.0f) ? x : splat(-87.0f);
  v16 fx = x * 1.44269504088896341f + 0.5f;
  i16v ki = __builtin_convertvector(fx, i16v);
  v16 kf = __builtin_convertvector(ki, v16);
  i16v gt = kf > fx;  // truncation rounded up: floor it
  kf += __builtin_convertvector(gt, v16);
  ki += gt;
  v16 r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
  v16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  i16v e = (ki + 127) << 23;
  return p * (v16)e;
}
inline v16 vtanh(v16 x) { return 1.0f - 2.0f / (vexp(x + x) + 1.0f); }
inline v16 vsigmoid(v16 x) { return 1.0f / (1.0f + vexp(-x)); }

// y[s] = init[s] + W x[s] for NV consecutive panels (16 * NV rows).
template <typename WT, int NV, int S>
inline void mv_panels(const WT* W, size_t pstride, int cols, const float* x, int xs,
                      float* y, int ys, const float* init, int is) {
  v16 acc[S][NV];
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[s][v] = vload(init + s * is + v * VW);
  for (int j = 0; j < cols; ++j) {
    v16 w[NV];
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
  return S == 1 ? 3 : (S == 2 ? 2 : 1);
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
}  // namespace

extern "C" {

// Network description; every pointer is owned by Python.  Sizes are padded to
// multiples of 16: Rp residual, Hp half-gate, Sp skip, Op output channels.
struct WnModel {
  int32_t L, K, Rp, Hp, Sp, Op, O;
  int32_t input_type;  // 0 categorical (embedding), 1 continuous (1x1 conv of x)
  int32_t dist;        // 0 mu-law softmax, 1 mixture of logistics, 2 Gaussian
  int32_t n_mix, n_classes, half;  // half: weights are float16
  float skip_scale;
  const int32_t* dil;
  const float* emb_w;  // categorical (n_classes, Rp); continuous (Rp)
  const float* emb_b;  // continuous (Rp)
  const void* wconv;   // L x packed (2 Hp, K Rp): rows by halves (see gate())
  const void* wrs;     // L x packed (Rp + Sp, Hp): residual rows then skip rows
  const float* brs;    // L x (Rp + Sp)
  const void* w1;      // packed (Sp, Sp)
  const float* b1;
  const void* w2;      // packed (Op, Sp)
  const float* b2;
  const float* dec;    // mu-law class -> sample value
  const int32_t* enc;  // mu-law class -> next input class
};

struct WnCall {
  int32_t B, n_steps;
  int64_t t0;  // absolute time of the first step (ring positions)
  float* rings;
  int64_t ring_bstride;
  const int64_t* ring_off;   // per layer, floats
  const int32_t* ring_mask;  // per layer, slots - 1 (power of two)
  int32_t* prev_cls;
  float* prev_x;
  const float* cond;  // [b, t - cond_t0, l, 2 Hp]
  int64_t cond_bstride, cond_tstride, cond_t0;
  const float* noise;  // [b, step, noise_dim]
  int64_t noise_bstride;
  int32_t noise_dim;
  float temperature, log_scale_min;
  float* out;  // [b, step]
  int64_t out_bstride;
  float* logits;  // [b, step, O] or null
  int64_t logits_bstride;
  int32_t n_threads;
  // Frame-rate conditioning (cond_mode 1; cond is then unused): the layer
  // conditioning of step t is base[b] + sum_k coef[b, t - cond_t0, k] *
  // frames[b, fidx[t - cond_t0] + k]  (frames: aux projected to L * 2 Hp).
  int32_t cond_mode, n_coef;
  const float* frames;
  int64_t frames_bstride;
  const int32_t* fidx;
  const float* coef;
  int64_t coef_bstride;
  const float* base;  // [b, L * 2 Hp]
  int32_t split;      // 1: one stream's step shared by two threads
};

int wn_abi_version() { return 5; }

}  // extern "C"

namespace {

// Index i with cdf[i-1] <= u * cdf[n-1] < cdf[i], like torch.searchsorted(right=True)
// on a float cumsum (torch accumulates cumsum in double on the CPU).
int inverse_cdf(const float* p, int n, float u, float* cdf) {
  double acc = 0.0;
  for (int i = 0; i < n; ++i) {
    acc += p[i];
    cdf[i] = (float)acc;
  }
  const float thr = u * cdf[n - 1];
  int i = 0;
  while (i < n && cdf[i] <= thr) ++i;
  return std::min(i, n - 1);
}

float sample_one(const WnModel& m, const WnCall& c, const float* lg, const float* u,
                 int* cls_out, float* work) {
  if (m.dist == 0) {
    int idx = 0;
    const int n = m.O;
    if (c.temperature <= 0.0f) {
      for (int i = 1; i < n; ++i)
        if (lg[i] > lg[idx]) idx = i;
    } else {
      const float inv_t = c.temperature;
      float mx = -INFINITY;
      for (int i = 0; i < n; ++i) work[i] = lg[i] / inv_t, mx = std::max(mx, work[i]);
      float sum = 0.0f;
      int i = 0;
      for (; i + VW <= n; i += VW) vstore(work + i, vexp(vload(work + i) - mx));
      for (; i < n; ++i) work[i] = std::exp(work[i] - mx);
      for (i = 0; i < n; ++i) sum += work[i];
      for (i = 0; i < n; ++i) work[i] /= sum;
      idx = inverse_cdf(work, n, u[0], work + n);
    }
    *cls_out = m.enc[idx];
    return m.dec[idx];
  }
  if (m.dist == 1) {
    const int M = m.n_mix;
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < M; ++i) mx = std::max(mx, lg[i]);
    for (int i = 0; i < M; ++i) sum += (work[i] = std::exp(lg[i] - mx));
    for (int i = 0; i < M; ++i) work[i] /= sum;
    const int k = inverse_cdf(work, M, u[0], work + M);
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

// Per-thread scratch for a group of S streams, all rows padded.
struct Work {
  std::vector<float> buf;
  float *h, *taps, *a, *ci, *z, *rs, *rs2, *skip, *skip2, *o1, *lg, *zero, *smp;
  int sh, st, sa, sz, srs, ss, so;
  Work(const WnModel& m, int S) {
    sh = m.Rp, st = m.K * m.Rp, sa = 2 * m.Hp, sz = m.Hp, srs = m.Rp + m.Sp, ss = m.Sp,
    so = m.Op;
    const size_t n =
        (size_t)S * (sh + st + 2 * sa + sz + 2 * srs + 3 * ss + so) + srs + 4 * m.Op + 64;
    buf.assign(n, 0.0f);
    float* p = buf.data();
    h = p, p += S * sh;
    taps = p, p += S * st;
    a = p, p += S * sa;
    ci = p, p += S * sa;
    z = p, p += S * sz;
    rs = p, p += S * srs;
    rs2 = p, p += S * srs;
    skip = p, p += S * ss;
    skip2 = p, p += S * ss;
    o1 = p, p += S * ss;
    lg = p, p += S * so;
    zero = p, p += srs;
    smp = p;
  }
};

// Column split of the residual/skip matrix (and row split of each gate half):
// columns [0, hs) and [hs, Hp).  Every path sums the two halves separately and
// then adds them, so the split-step (two threads) and batched paths round the
// same way and a batch equals its utterances one by one.
inline int half_split(const WnModel& m) { return (m.Hp / VW / 2) * VW; }

// Conditioning rows [r0, r1) of layer l for stream b at local step i (frame mode).
inline void cond_rows(const WnModel& m, const WnCall& c, int b, int64_t i, int l,
                      int r0, int r1, float* dst) {
  const int G2 = 2 * m.Hp;
  const size_t LW = (size_t)m.L * G2;
  const float* base = c.base + b * LW + (size_t)l * G2;
  const float* fr = c.frames + b * c.frames_bstride + (size_t)c.fidx[i] * LW + (size_t)l * G2;
  const float* cf = c.coef + b * c.coef_bstride + i * c.n_coef;
  for (int r = r0; r < r1; r += VW) {
    v16 acc = vload(base + r);
    for (int k = 0; k < c.n_coef; ++k) acc += vload(fr + k * LW + r) * cf[k];
    vstore(dst + r, acc);
  }
}

inline void embed(const WnModel& m, int cls, float x, float* h) {
  if (m.input_type == 0) {
    std::memcpy(h, m.emb_w + (size_t)cls * m.Rp, sizeof(float) * m.Rp);
  } else {
    for (int i = 0; i < m.Rp; i += VW)
      vstore(h + i, vload(m.emb_w + i) * x + vload(m.emb_b + i));
  }
}

// Gate rows are packed by halves: [filter 0:hs, gate 0:hs, filter hs:Hp, gate
// hs:Hp], so each thread of the split step owns one contiguous block of rows.
inline void gate(const float* a, float* z, int z0, int z1) {
  const int n = z1 - z0;
  const float* f = a + 2 * z0;
  for (int i = 0; i < n; i += VW)
    vstore(z + z0 + i, vtanh(vload(f + i)) * vsigmoid(vload(f + n + i)));
}

inline void residual(float* h, const float* ra, const float* rb, int Rp) {
  const float sq = std::sqrt(0.5f);
  for (int i = 0; i < Rp; i += VW) vstore(h + i, (vload(h + i) + (vload(ra + i) + vload(rb + i))) * sq);
}

inline void accumulate(float* sk, const float* r, int n) {
  for (int i = 0; i < n; i += VW) vstore(sk + i, vload(sk + i) + vload(r + i));
}

inline void skip_out(const WnModel& m, const float* sa, const float* sb, float* sk) {
  for (int i = 0; i < m.Sp; i += VW) {
    v16 v = (vload(sa + i) + vload(sb + i)) * m.skip_scale;
    vstore(sk + i, v > 0.0f ? v : 0.0f);
  }
}

inline void relu(float* o, int n) {
  for (int i = 0; i < n; i += VW) {
    v16 v = vload(o + i);
    vstore(o + i, v > 0.0f ? v : 0.0f);
  }
}

inline void write_ring(const WnCall& c, int b, int64_t off, int32_t mask, int64_t t,
                       const float* h, int r0, int r1, int Rp) {
  float* ring = c.rings + b * c.ring_bstride + off;
  std::memcpy(ring + (t & mask) * Rp + r0, h + r0, sizeof(float) * (r1 - r0));
}

inline void read_taps(const WnCall& c, int b, int64_t off, int32_t mask, int64_t t,
                      int64_t d, int K, const float* h, float* taps, int Rp) {
  const float* ring = c.rings + b * c.ring_bstride + off;
  for (int k = 0; k < K - 1; ++k)
    std::memcpy(taps + k * Rp, ring + ((t - (K - 1 - k) * d) & mask) * Rp, sizeof(float) * Rp);
  std::memcpy(taps + (K - 1) * Rp, h, sizeof(float) * Rp);
}

template <typename WT, int S>
void run_group(const WnModel& m, const WnCall& c, int b0, Work& w) {
  const int L = m.L, K = m.K, Rp = m.Rp, Hp = m.Hp, Sp = m.Sp, Op = m.Op;
  const int G2 = 2 * Hp, RS = Rp + Sp, KR = K * Rp, hs = half_split(m);
  const WT* wconv = static_cast<const WT*>(m.wconv);
  const WT* wrs = static_cast<const WT*>(m.wrs);
  const WT* w1 = static_cast<const WT*>(m.w1);
  const WT* w2 = static_cast<const WT*>(m.w2);
  const size_t conv_sz = (size_t)G2 * KR, rs_sz = (size_t)RS * Hp;
  for (int step = 0; step < c.n_steps; ++step) {
    const int64_t t = c.t0 + step;
    for (int s = 0; s < S; ++s) {
      const int b = b0 + s;
      embed(m, c.prev_cls[b], c.prev_x[b], w.h + s * w.sh);
      std::memset(w.skip + s * w.ss, 0, sizeof(float) * Sp);
      std::memset(w.skip2 + s * w.ss, 0, sizeof(float) * Sp);
    }
    const int64_t ic = t - c.cond_t0;
    const float* cond0 = c.cond_mode ? nullptr : c.cond + ic * c.cond_tstride + b0 * c.cond_bstride;
    for (int l = 0; l < L; ++l) {
      const int64_t d = m.dil[l];
      const int32_t mask = c.ring_mask[l];
      for (int s = 0; s < S; ++s) {
        const float* h = w.h + s * w.sh;
        write_ring(c, b0 + s, c.ring_off[l], mask, t, h, 0, Rp, Rp);
        read_taps(c, b0 + s, c.ring_off[l], mask, t, d, K, h, w.taps + s * w.st, Rp);
      }
      const float* init;
      int is;
      if (c.cond_mode) {
        for (int s = 0; s < S; ++s) cond_rows(m, c, b0 + s, ic, l, 0, G2, w.ci + s * w.sa);
        init = w.ci, is = w.sa;
      } else {
        init = cond0 + (size_t)l * G2, is = (int)c.cond_bstride;
      }
      matvec<WT, S>(wconv + l * conv_sz, 0, G2 / VW, KR, KR, w.taps, w.st, w.a, w.sa, init, is);
      for (int s = 0; s < S; ++s) {
        gate(w.a + s * w.sa, w.z + s * w.sz, 0, hs);
        gate(w.a + s * w.sa, w.z + s * w.sz, hs, Hp);
      }
      const WT* wl = wrs + l * rs_sz;
      matvec<WT, S>(wl, 0, RS / VW, hs, Hp, w.z, w.sz, w.rs, w.srs, m.brs + (size_t)l * RS, 0);
      matvec<WT, S>(wl + (size_t)hs * VW, 0, RS / VW, Hp - hs, Hp, w.z + hs, w.sz, w.rs2, w.srs,
                    w.zero, 0);
      for (int s = 0; s < S; ++s) {
        const float* ra = w.rs + s * w.srs;
        const float* rb = w.rs2 + s * w.srs;
        residual(w.h + s * w.sh, ra, rb, Rp);
        accumulate(w.skip + s * w.ss, ra + Rp, Sp);
        accumulate(w.skip2 + s * w.ss, rb + Rp, Sp);
      }
    }
    for (int s = 0; s < S; ++s)
      skip_out(m, w.skip + s * w.ss, w.skip2 + s * w.ss, w.skip + s * w.ss);
    matvec<WT, S>(w1, 0, Sp / VW, Sp, Sp, w.skip, w.ss, w.o1, w.ss, m.b1, 0);
    for (int s = 0; s < S; ++s) relu(w.o1 + s * w.ss, Sp);
    matvec<WT, S>(w2, 0, Op / VW, Sp, Sp, w.o1, w.ss, w.lg, w.so, m.b2, 0);
    for (int s = 0; s < S; ++s) {
      const int b = b0 + s;
      const float* lg = w.lg + s * w.so;
      if (c.logits)
        std::memcpy(c.logits + b * c.logits_bstride + (size_t)step * m.O, lg,
                    sizeof(float) * m.O);
      const float* u = c.noise + b * c.noise_bstride + (int64_t)step * c.noise_dim;
      int cls = 0;
      const float x = sample_one(m, c, lg, u, &cls, w.smp);
      c.out[b * c.out_bstride + step] = x;
      c.prev_cls[b] = cls;
      c.prev_x[b] = x;
    }
  }
}

template <typename WT>
void run_range(const WnModel& m, const WnCall& c, int b0, int b1) {
  Work w(m, SMAX);
  for (int b = b0; b < b1;) {
    const int n = std::min(SMAX, b1 - b);
    switch (n) {
      case 1: run_group<WT, 1>(m, c, b, w); break;
      case 2: run_group<WT, 2>(m, c, b, w); break;
      case 3: run_group<WT, 3>(m, c, b, w); break;
      case 4: run_group<WT, 4>(m, c, b, w); break;
#if defined(__AVX512F__)
      case 5: run_group<WT, 5>(m, c, b, w); break;
      case 6: run_group<WT, 6>(m, c, b, w); break;
      case 7: run_group<WT, 7>(m, c, b, w); break;
      case 8: run_group<WT, 8>(m, c, b, w); break;
#endif
    }
    b += n;
  }
}

// ----------------------------------------------------------- split step
// One stream, two threads: thread t owns half of every gate half's rows (so
// half of the z vector) and the matching half of the residual/skip matrix's
// columns, so each thread reads half of every layer's weights (they stay in
// its own L2).  One exchange per layer: the two partial residual/skip sums.
// The output head: out1 is computed by both, out2's rows are split, and both
// threads sample the same value from the shared logits.

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

struct alignas(64) Flag {
  std::atomic<int64_t> v{0};
  char pad[64 - sizeof(std::atomic<int64_t>)];
};

// Two-party barrier: publish my count, spin until the other has reached it.
// Spins with pause; after a while yields the core (a loaded machine may have
// descheduled the other thread, and spinning would only delay it).
struct Barrier2 {
  Flag f[2];
  void wait(int tid, int64_t k) {
    f[tid].v.store(k, std::memory_order_release);
    int spins = 0;
    while (f[1 - tid].v.load(std::memory_order_acquire) < k) {
      cpu_relax();
      if (++spins > 256) {
        std::this_thread::yield();
        spins = 0;
      }
    }
  }
};

struct SplitShared {
  Barrier2 bar;
  std::vector<float> part[2][2];  // [thread][parity] partial residual/skip sums
  std::vector<float> skip[2];
  std::vector<float> lg;
  SplitShared(const WnModel& m) {
    for (auto& pt : part)
      for (auto& v : pt) v.assign(m.Rp + m.Sp, 0.0f);
    for (auto& v : skip) v.assign(m.Sp, 0.0f);
    lg.assign(m.Op, 0.0f);
  }
};

template <typename WT>
void run_split(const WnModel& m, const WnCall& c, int tid, SplitShared& sh) {
  const int L = m.L, K = m.K, Rp = m.Rp, Hp = m.Hp, Sp = m.Sp, Op = m.Op;
  const int G2 = 2 * Hp, RS = Rp + Sp, KR = K * Rp, hs = half_split(m);
  const WT* wconv = static_cast<const WT*>(m.wconv);
  const WT* wrs = static_cast<const WT*>(m.wrs);
  const WT* w1 = static_cast<const WT*>(m.w1);
  const WT* w2 = static_cast<const WT*>(m.w2);
  const size_t conv_sz = (size_t)G2 * KR, rs_sz = (size_t)RS * Hp;
  Work w(m, 1);
  const int z0 = tid == 0 ? 0 : hs, z1 = tid == 0 ? hs : Hp;  // my z rows / rs columns
  const int hr0 = tid == 0 ? 0 : Rp / 2, hr1 = tid == 0 ? Rp / 2 : Rp;  // my ring rows
  const int op_half = (Op / VW) / 2;
  const int o0 = tid == 0 ? 0 : op_half, o1 = tid == 0 ? op_half : Op / VW;
  int64_t k = 0;  // barrier count
  int cls = c.prev_cls[0];
  float x = c.prev_x[0];
  for (int step = 0; step < c.n_steps; ++step) {
    const int64_t t = c.t0 + step;
    embed(m, cls, x, w.h);
    std::memset(w.skip, 0, sizeof(float) * Sp);
    const int64_t ic = t - c.cond_t0;
    const float* cond0 = c.cond_mode ? nullptr : c.cond + ic * c.cond_tstride;
    for (int l = 0; l < L; ++l) {
      const int64_t d = m.dil[l];
      const int32_t mask = c.ring_mask[l];
      write_ring(c, 0, c.ring_off[l], mask, t, w.h, hr0, hr1, Rp);
      read_taps(c, 0, c.ring_off[l], mask, t, d, K, w.h, w.taps, Rp);
      const float* init;
      if (c.cond_mode) {
        cond_rows(m, c, 0, ic, l, 2 * z0, 2 * z1, w.ci);
        init = w.ci;
      } else {
        init = cond0 + (size_t)l * G2;
      }
      const WT* wc = wconv + l * conv_sz;
      matvec<WT, 1>(wc, 2 * z0 / VW, 2 * z1 / VW, KR, KR, w.taps, 0, w.a, 0, init, 0);
      gate(w.a, w.z, z0, z1);
      const WT* wl = wrs + l * rs_sz;
      float* mine = sh.part[tid][k & 1].data();
      if (tid == 0)
        matvec<WT, 1>(wl, 0, RS / VW, hs, Hp, w.z, 0, mine, 0, m.brs + (size_t)l * RS, 0);
      else
        matvec<WT, 1>(wl + (size_t)hs * VW, 0, RS / VW, Hp - hs, Hp, w.z + hs, 0, mine, 0,
                      w.zero, 0);
      accumulate(w.skip, mine + Rp, Sp);
      sh.bar.wait(tid, ++k);
      const float* pa = sh.part[0][(k - 1) & 1].data();
      const float* pb = sh.part[1][(k - 1) & 1].data();
      residual(w.h, pa, pb, Rp);
    }
    std::memcpy(sh.skip[tid].data(), w.skip, sizeof(float) * Sp);
    sh.bar.wait(tid, ++k);
    skip_out(m, sh.skip[0].data(), sh.skip[1].data(), w.skip);
    matvec<WT, 1>(w1, 0, Sp / VW, Sp, Sp, w.skip, 0, w.o1, 0, m.b1, 0);
    relu(w.o1, Sp);
    matvec<WT, 1>(w2, o0, o1, Sp, Sp, w.o1, 0, sh.lg.data(), 0, m.b2, 0);
    sh.bar.wait(tid, ++k);
    const float* lg = sh.lg.data();
    const float* u = c.noise + (int64_t)step * c.noise_dim;
    x = sample_one(m, c, lg, u, &cls, w.smp);
    if (tid == 0) {
      if (c.logits)
        std::memcpy(c.logits + (size_t)step * m.O, lg, sizeof(float) * m.O);
      c.out[step] = x;
    }
  }
  if (tid == 0) {
    c.prev_cls[0] = cls;
    c.prev_x[0] = x;
  }
}

}  // namespace

extern "C" double wn_barrier_bench(int64_t n) {
  // Nanoseconds per two-thread barrier (a measurement aid for the profile).
  SplitShared* sh = nullptr;
  struct Holder { Barrier2 bar; } hold;
  (void)sh;
  auto body = [&](int tid) {
    for (int64_t k = 1; k <= n; ++k) hold.bar.wait(tid, k);
  };
  auto t0 = std::chrono::steady_clock::now();
  std::thread other(body, 1);
  body(0);
  other.join();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)n;
}

extern "C" int wn_run(const WnModel* m, const WnCall* c) {
  if (m->Rp % VW || m->Hp % VW || m->Sp % VW || m->Op % VW) return 1;
  if (c->cond_mode && (!c->frames || !c->fidx || !c->coef || !c->base)) return 2;
  if (c->B == 1 && c->split && c->n_threads >= 2) {
    SplitShared sh(*m);
    auto fn = m->half ? run_split<uint16_t> : run_split<float>;
    std::thread other(fn, std::cref(*m), std::cref(*c), 1, std::ref(sh));
    fn(*m, *c, 0, sh);
    other.join();
    return 0;
  }
  auto fn = m->half ? run_range<uint16_t> : run_range<float>;
  const int nt = std::max(1, std::min(c->n_threads, c->B));
  if (nt == 1) {
    fn(*m, *c, 0, c->B);
    return 0;
  }
  // Split the batch into contiguous, balanced ranges, one per thread.
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
