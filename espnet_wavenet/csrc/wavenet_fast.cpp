// Fast autoregressive WaveNet generation on the CPU.
//
// One call runs ``n_steps`` samples of a whole batch: for every sample all
// layers, the output head and the sampling, with no Python in between.
// Weights arrive packed by espnet_wavenet/generation/fast.py: every matrix is
// cut into panels of 16 output rows, each panel stored column by column, so a
// matrix-vector product streams memory linearly and keeps panel-row accumulators
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
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// Floats per vector and rows per weight panel: one native vector register
// (GCC lowers wider generic vectors on AVX2 badly: ~20x slower, measured).
#if defined(__AVX512F__)
constexpr int VW = 16;
#elif defined(__AVX__)
constexpr int VW = 8;
#else
constexpr int VW = 4;
#endif
// Quarters of the layers whose skips the pipeline's thread B projects
// (skip_split): tuned on the default and quality configs; with float weights
// thread A's products are slower (memory bound), so B takes more.
constexpr int SKIP_SPLIT_FLOAT = 3, SKIP_SPLIT_INT8 = 2;
// VW-lane vectors (named v16 after the AVX-512 width).
typedef float v16 __attribute__((vector_size(VW * 4)));
typedef float v16u __attribute__((vector_size(VW * 4), aligned(4)));
typedef int32_t i16v __attribute__((vector_size(VW * 4)));

#if defined(__AVX512F__)
constexpr int SMAX = 8;  // streams per register block (32 vector registers)
#else
constexpr int SMAX = 4;  // 16 vector registers
#endif

inline v16 vload(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void vstore(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
inline v16 splat(float x) { return v16{} + x; }

// Half-precision weights: VW halves -> VW floats (one F16C conversion).
inline v16 vload(const uint16_t* p) {
#if defined(__AVX512F__)
  return (v16)_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#elif defined(__F16C__) && defined(__AVX__)
  return (v16)_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
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
// ------------------------------------------------------- int8 weights
// Each matrix row has a scale (max |w| / 127) and int8 weights; an activation
// vector is quantized on the fly the same way (one scale per vector) and
// offset to unsigned (q + 128), so one AVX-512 VNNI instruction (vpdpbusd)
// does 64 multiply-adds into int32.  The offset is removed with the row's
// precomputed 128 * sum(w).  Panels: VW rows, columns in groups of 4, so a
// panel's group is one vector (lane = row, 4 bytes = 4 columns).
// Integer sums are exact, so every thread layout rounds identically.
typedef int32_t i32v16 __attribute__((vector_size(VW * 4)));

// Quantize n floats (n % 16 == 0) to offset bytes; returns the scale.
inline float quantize(const float* x, int n, uint8_t* q) {
  v16 mx{};
  for (int i = 0; i < n; i += VW) {
    v16 v = vload(x + i);
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
  i32v16 acc[S][NV];
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[s][v] = i32v16{};
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
        acc[s][v] = (i32v16)_mm512_dpbusd_epi32((__m512i)acc[s][v], xv, w[v]);
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
      const i32v16 c = *reinterpret_cast<const i32v16*>(cs + v * VW);
      const v16 f = __builtin_convertvector(acc[s][v] - c, v16);
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
}  // namespace

extern "C" {

// Network description; every pointer is owned by Python.  Sizes are padded to
// multiples of 16: Rp residual, Hp half-gate, Sp skip, Op output channels.
struct WnModel {
  int32_t L, K, Rp, Hp, Sp, Op, O;
  int32_t input_type;  // 0 categorical (embedding), 1 continuous (1x1 conv of x)
  int32_t dist;        // 0 mu-law softmax, 1 mixture of logistics, 2 Gaussian
  int32_t n_mix, n_classes;
  int32_t prec;  // matrix weights: 0 float32, 1 float16, 2 int8 (head in float32)
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
  // int8 (prec 2): conv as L x K quantized (2 Hp, Rp) matrices (tap k, oldest
  // first), residual/skip as L x (Rp + Sp, Hp); per-row scales and 128 * row sums.
  const int8_t* qconv;
  const float* qconv_s;
  const int32_t* qconv_c;
  const int8_t* qrs;
  const float* qrs_s;
  const int32_t* qrs_c;
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
  int32_t split;      // 1: threads may spin-wait on each other (run_pipe pairs)
  // Teacher forcing (quality checks): the next input is the given sample
  // (class and value) instead of the drawn one.  Null: generate.
  const int32_t* forced_cls;
  const float* forced_x;
  int64_t forced_bstride;
};

int wn_abi_version() { return 8; }

// SHA-256 of this file as the build saw it (-DWN_SOURCE_SHA256=...): an
// installed kernel built from another version of the source is stale.
#ifndef WN_SOURCE_SHA256
#define WN_SOURCE_SHA256 ""
#endif
const char* wn_source_sha256() { return WN_SOURCE_SHA256; }

// Rows per weight panel (the vector width): the packing follows it.
int wn_panel_rows() { return VW; }

}  // extern "C"

namespace {

// Index i with cdf[i-1] <= u * cdf[n-1] < cdf[i], like torch.searchsorted(right=True)
// on a float cumsum (torch accumulates cumsum in double on the CPU).  Whole
// blocks of 16 are skipped by their sums (cdf is monotone), so the serial
// double additions are ~n/16 + 16 rather than n.
int inverse_cdf(const float* p, int n, float u) {
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

inline float hmax(v16 v) {
  float m = v[0];
  for (int i = 1; i < VW; ++i) m = std::max(m, v[i]);
  return m;
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
      const float tmp = c.temperature;
      const int nv = n / VW * VW;
      v16 mv = splat(-INFINITY);
      for (int i = 0; i < nv; i += VW) {
        const v16 x = vload(lg + i) / tmp;
        vstore(work + i, x);
        mv = mv > x ? mv : x;
      }
      float mx = hmax(mv);
      for (int i = nv; i < n; ++i) work[i] = lg[i] / tmp, mx = std::max(mx, work[i]);
      v16 sv{};
      for (int i = 0; i < nv; i += VW) {
        const v16 e = vexp(vload(work + i) - mx);
        vstore(work + i, e);
        sv += e;
      }
      float sum = 0.0f;
      for (int i = 0; i < VW; ++i) sum += sv[i];
      for (int i = nv; i < n; ++i) sum += (work[i] = std::exp(work[i] - mx));
      for (int i = 0; i < nv; i += VW) vstore(work + i, vload(work + i) / sum);
      for (int i = nv; i < n; ++i) work[i] /= sum;
      idx = inverse_cdf(work, n, u[0]);
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

// The three products of a layer, float weights (float32 or float16).  Each
// conv row sums from the conditioning over the older taps, then the newest
// (one accumulation chain, so splitting it at the newest tap changes nothing).
template <typename WT>
struct Dense {
  typedef WT Head;
  const WnModel& m;
  Dense(const WnModel& m, int) : m(m) {}
  const WT* conv(int l) const {
    return static_cast<const WT*>(m.wconv) + (size_t)l * 2 * m.Hp * m.K * m.Rp;
  }
  // past = init + older taps (taps: (K - 1) Rp per stream; none: past = init).
  void conv_old(int l, int nb, const float* taps, float* past, const float* init, int is) {
    const int G2 = 2 * m.Hp, st = (m.K - 1) * m.Rp;
    matvec_n<WT>(nb, conv(l), 0, G2 / VW, st, m.K * m.Rp, taps, st, past, G2, init, is);
  }
  // a = past + newest tap (h: Rp per stream).
  void conv_new(int l, int nb, const float* h, float* a, const float* past) {
    const int G2 = 2 * m.Hp;
    matvec_n<WT>(nb, conv(l) + (size_t)(m.K - 1) * m.Rp * VW, 0, G2 / VW, m.Rp, m.K * m.Rp,
                 h, m.Rp, a, G2, past, G2);
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
  if (m.input_type == 0) {
    std::memcpy(h, m.emb_w + (size_t)cls * m.Rp, sizeof(float) * m.Rp);
  } else {
    for (int i = 0; i < m.Rp; i += VW)
      vstore(h + i, vload(m.emb_w + i) * x + vload(m.emb_b + i));
  }
}

// Gate rows: filter half (n rows) then gate half.
inline void gate(const float* a, float* z, int n) {
  for (int i = 0; i < n; i += VW)
    vstore(z + i, vtanh(vload(a + i)) * vsigmoid(vload(a + n + i)));
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
    v16 v = vload(o + i) * scale;
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

// The skip sum is formed as two partial sums, layers [0, lo) and [lo, L), then
// added: in the pipeline, thread B projects the first lo layers' skips and A
// the rest (see run_pipe; lo balances the two threads' loads).
inline int skip_split(const WnModel& m) {
  return (m.prec == 2 ? SKIP_SPLIT_INT8 : SKIP_SPLIT_FLOAT) * m.L / 4;
}

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

// Profile of the pipeline (built with -DWN_PROFILE only): TSC cycles summed
// over calls, read and reset by wn_profile.
#if defined(WN_PROFILE) && defined(__x86_64__)
// Keep in step with PROFILE_SLOTS in bin/benchmark.py.
enum { P_STEPS, P_TOTAL, P_A_WAIT, P_A_HEAD, P_A_DRAW, P_B_WAIT, P_B_OLDER, P_B_SKIPS, P_N };
static std::atomic<uint64_t> g_prof[P_N];
// Per-thread sums (a shared line would ping-pong between the two cores and
// distort what it measures), added to g_prof when a thread's part ends.
static thread_local uint64_t t_prof[P_N];
struct ProfTimer {
  int slot;
  uint64_t t0 = __rdtsc();
  explicit ProfTimer(int s) : slot(s) {}
  ~ProfTimer() { t_prof[slot] += __rdtsc() - t0; }
};
inline void prof_flush() {
  for (int i = 0; i < P_N; ++i) g_prof[i] += t_prof[i], t_prof[i] = 0;
}
#define WN_PROF(slot) ProfTimer prof_timer_##slot(slot)
#define WN_PROF_FLUSH() prof_flush()
#else
#define WN_PROF(slot)
#define WN_PROF_FLUSH()
#endif

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
        WN_PROF(P_A_WAIT);
        olds.wait((int64_t)step * L + l + 1);
      }
      if (l + 1 < L) prefetch_lines(past + (size_t)(l + 1) * nb * G2, (size_t)nb * G2);
      ops.conv_new(l, nb, w.h.data(), w.a.data(), past + (size_t)l * nb * G2);
      float* z = sh.z.data() + (size_t)l * nb * Hp;
      for (int s = 0; s < nb; ++s) gate(&w.a[s * G2], z + s * Hp, Hp);
      sh.prog.v.store((int64_t)step * L + l + 1, std::memory_order_release);
      // Residual rows (none after the last layer) and, from layer lo, skip rows.
      const int p0 = l < L - 1 ? 0 : Rp / VW, p1 = l < lo ? Rp / VW : RS / VW;
      if (p0 < p1) ops.rs(l, p0, p1, nb, z, w.r.data(), RS);
      for (int s = 0; s < nb; ++s) {
        if (l < L - 1) residual(&w.h[s * Rp], &w.r[s * RS], Rp);
        if (l >= lo) accumulate(&w.skip[s * Sp], &w.r[s * RS + Rp], Sp);
      }
      if (l == L - 2 && lo > 0) prefetch_lines(sh.skip_lo.data(), (size_t)nb * Sp);
    }
    if (lo > 0) {
      WN_PROF(P_A_WAIT);
      lows.wait(step + 1);
      accumulate(w.skip.data(), sh.skip_lo.data(), nb * Sp);
    }
    {
      WN_PROF(P_A_HEAD);
      head<typename Ops::Head>(m, nb, w.skip.data(), w.o1.data(), w.lg.data());
    }
    WN_PROF(P_A_DRAW);
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
        WN_PROF(P_B_WAIT);
        prog.wait((int64_t)step * L + l + 1);
      }
      if (l < lo) {
        WN_PROF(P_B_SKIPS);
        // Safe to zero at layer 0: A read the previous step's sum before it
        // started this step (whose layer 0 it has published).
        if (l == 0) std::fill(sh.skip_lo.begin(), sh.skip_lo.end(), 0.0f);
        ops.rs(l, Rp / VW, (Rp + Sp) / VW, nb, sh.z.data() + (size_t)l * nb * Hp,
               w.r.data() - Rp, Sp);
        for (int s = 0; s < nb; ++s) accumulate(&sh.skip_lo[s * Sp], &w.r[s * Sp], Sp);
        if (l == lo - 1) sh.lows.v.store(step + 1, std::memory_order_release);
      }
      WN_PROF(P_B_OLDER);
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
  g_prof[P_TOTAL] += __rdtsc() - t0;
  g_prof[P_STEPS] += c.n_steps;
#endif
}

typedef void (*RangeFn)(const WnModel&, const WnCall&, int, int);

// The runner of a precision: ``pipe`` the two-thread pipeline, else one thread.
inline RangeFn runner(const WnModel& m, bool pipe) {
  if (m.prec == 2) return pipe ? run_pipe<Quant> : run_range<Quant>;
  if (m.prec == 1) return pipe ? run_pipe<Dense<uint16_t>> : run_range<Dense<uint16_t>>;
  return pipe ? run_pipe<Dense<float>> : run_range<Dense<float>>;
}

}  // namespace

extern "C" double wn_barrier_bench(int64_t n) {
  // Nanoseconds per two-thread barrier (a measurement aid for the profile).
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

// Copies the profile counters into out[0:P_N] and resets them; returns the
// number of slots (0 when not built with -DWN_PROFILE).
extern "C" int wn_profile(uint64_t* out) {
#if defined(WN_PROFILE) && defined(__x86_64__)
  for (int i = 0; i < P_N; ++i) out[i] = g_prof[i].exchange(0);
  return P_N;
#else
  (void)out;
  return 0;
#endif
}

extern "C" int wn_has_vnni() {
#if defined(__AVX512VNNI__)
  return 1;
#else
  return 0;
#endif
}

extern "C" int wn_run(const WnModel* m, const WnCall* c) {
  if (m->Rp % VW || m->Hp % VW || m->Sp % VW || m->Op % VW) return 1;
  if (c->cond_mode && (!c->frames || !c->fidx || !c->coef || !c->base)) return 2;
  if (m->prec == 2 && (!m->qconv || !m->qrs)) return 3;
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
