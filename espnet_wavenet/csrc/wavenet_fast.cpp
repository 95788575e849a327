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

// Rows [p0, p1) panels of a packed (rows x cols) matrix, for S streams.
template <typename WT, int S>
void matvec(const WT* W, int p0, int p1, int cols, const float* x, int xs, float* y,
            int ys, const float* init, int is) {
  constexpr int NV = panels_per_block<S>();
  const size_t ps = (size_t)cols * VW;
  int p = p0;
  for (; p + NV <= p1; p += NV)
    mv_panels<WT, NV, S>(W + p * ps, ps, cols, x, xs, y + p * VW, ys, init + p * VW, is);
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
  const void* wconv;   // L x packed (2 Hp, K Rp): filter rows then gate rows
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
};

int wn_abi_version() { return 3; }

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
  std::vector<float, std::allocator<float>> buf;
  float *h, *taps, *a, *z, *rs, *skip, *o1, *lg, *smp;
  int sh, st, sa, sz, srs, ss, so;
  Work(const WnModel& m, int S) {
    sh = m.Rp, st = m.K * m.Rp, sa = 2 * m.Hp, sz = m.Hp, srs = m.Rp + m.Sp, ss = m.Sp,
    so = m.Op;
    const size_t n = (size_t)S * (sh + st + sa + sz + srs + 2 * ss + so) + 4 * m.Op + 64;
    buf.assign(n, 0.0f);
    float* p = buf.data();
    h = p, p += S * sh;
    taps = p, p += S * st;
    a = p, p += S * sa;
    z = p, p += S * sz;
    rs = p, p += S * srs;
    skip = p, p += S * ss;
    o1 = p, p += S * ss;
    lg = p, p += S * so;
    smp = p;
  }
};

template <typename WT, int S>
void run_group(const WnModel& m, const WnCall& c, int b0, Work& w) {
  const int L = m.L, K = m.K, Rp = m.Rp, Hp = m.Hp, Sp = m.Sp, Op = m.Op;
  const int G2 = 2 * Hp, RS = Rp + Sp, KR = K * Rp;
  const WT* wconv = static_cast<const WT*>(m.wconv);
  const WT* wrs = static_cast<const WT*>(m.wrs);
  const WT* w1 = static_cast<const WT*>(m.w1);
  const WT* w2 = static_cast<const WT*>(m.w2);
  const size_t conv_sz = (size_t)G2 * KR, rs_sz = (size_t)RS * Hp;
  const float sq = std::sqrt(0.5f);
  for (int step = 0; step < c.n_steps; ++step) {
    const int64_t t = c.t0 + step;
    for (int s = 0; s < S; ++s) {
      const int b = b0 + s;
      float* h = w.h + s * w.sh;
      if (m.input_type == 0) {
        std::memcpy(h, m.emb_w + (size_t)c.prev_cls[b] * Rp, sizeof(float) * Rp);
      } else {
        const float x = c.prev_x[b];
        for (int i = 0; i < Rp; i += VW)
          vstore(h + i, vload(m.emb_w + i) * x + vload(m.emb_b + i));
      }
      std::memset(w.skip + s * w.ss, 0, sizeof(float) * Sp);
    }
    const float* cond0 = c.cond + (t - c.cond_t0) * c.cond_tstride + b0 * c.cond_bstride;
    for (int l = 0; l < L; ++l) {
      const int64_t d = m.dil[l];
      const int32_t mask = c.ring_mask[l];
      for (int s = 0; s < S; ++s) {
        float* ring = c.rings + (b0 + s) * c.ring_bstride + c.ring_off[l];
        const float* h = w.h + s * w.sh;
        std::memcpy(ring + (t & mask) * Rp, h, sizeof(float) * Rp);
        float* taps = w.taps + s * w.st;
        for (int k = 0; k < K - 1; ++k)
          std::memcpy(taps + k * Rp, ring + ((t - (K - 1 - k) * d) & mask) * Rp,
                      sizeof(float) * Rp);
        std::memcpy(taps + (K - 1) * Rp, h, sizeof(float) * Rp);
      }
      matvec<WT, S>(wconv + l * conv_sz, 0, G2 / VW, KR, w.taps, w.st, w.a, w.sa,
                    cond0 + (size_t)l * G2, (int)c.cond_bstride);
      for (int s = 0; s < S; ++s) {
        const float* a = w.a + s * w.sa;
        float* z = w.z + s * w.sz;
        for (int i = 0; i < Hp; i += VW)
          vstore(z + i, vtanh(vload(a + i)) * vsigmoid(vload(a + Hp + i)));
      }
      matvec<WT, S>(wrs + l * rs_sz, 0, RS / VW, Hp, w.z, w.sz, w.rs, w.srs,
                    m.brs + (size_t)l * RS, 0);
      for (int s = 0; s < S; ++s) {
        float* h = w.h + s * w.sh;
        const float* rs = w.rs + s * w.srs;
        float* sk = w.skip + s * w.ss;
        for (int i = 0; i < Rp; i += VW) vstore(h + i, (vload(h + i) + vload(rs + i)) * sq);
        for (int i = 0; i < Sp; i += VW) vstore(sk + i, vload(sk + i) + vload(rs + Rp + i));
      }
    }
    for (int s = 0; s < S; ++s) {
      float* sk = w.skip + s * w.ss;
      for (int i = 0; i < Sp; i += VW) {
        v16 v = vload(sk + i) * m.skip_scale;
        vstore(sk + i, v > 0.0f ? v : 0.0f);
      }
    }
    matvec<WT, S>(w1, 0, Sp / VW, Sp, w.skip, w.ss, w.o1, w.ss, m.b1, 0);
    for (int s = 0; s < S; ++s) {
      float* o = w.o1 + s * w.ss;
      for (int i = 0; i < Sp; i += VW) {
        v16 v = vload(o + i);
        vstore(o + i, v > 0.0f ? v : 0.0f);
      }
    }
    matvec<WT, S>(w2, 0, Op / VW, Sp, w.o1, w.ss, w.lg, w.so, m.b2, 0);
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

}  // namespace

extern "C" int wn_run(const WnModel* m, const WnCall* c) {
  if (m->Rp % VW || m->Hp % VW || m->Sp % VW || m->Op % VW) return 1;
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
