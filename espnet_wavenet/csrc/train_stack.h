// Training on the CPU: the whole residual stack, forward and backward, in
// float32, one batch element per thread, time tile by time tile.
//
// Each layer's products run on a tile of TT samples held in L1/L2 (the gate
// input, its activations, the residual and skip outputs), so a layer touches
// memory once per tensor it must keep for the backward pass (its input and its
// gate activations), not once per operation as separate torch ops do.  The
// frame-rate conditioning is stretched inside the tile (a few multiply-adds
// per value) instead of being written out per layer.  Products: mk, a register
// block of MR rows x TNB vectors whose left operand is broadcast from memory
// (vbroadcastss from memory uses a load port only; from a register it takes
// the port one of the two FMA units shares: 89 vs 175 GFLOP/s on one Xeon core).
#pragma once

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "vec.h"
#include "wavenet_abi.h"

namespace wn {

#if defined(__AVX512F__)
constexpr int TMR = 8;  // 16 accumulators of 32
#else
constexpr int TMR = 4;  // 8 of 16
#endif
constexpr int TNB = 2;
constexpr int TNC = TNB * VW;  // columns of a register block
constexpr int TT = 64;         // samples per tile

// C[MR x TNC] = (load ? C : 0) + A B, row k of B at B + k * ldb; element (i,
// k) of A at A[k * MR + i] (LDA 0: a packed block, see pack_a) or at
// A[i * LDA + k].  Compile-time strides: the broadcasts' addresses are then
// constant offsets (with run-time strides the products ran at half speed).
template <int MR, int LDA>
inline void mk(const float* __restrict A, const float* __restrict B, long ldb, int K,
               float* __restrict C, long ldc, bool load) {
  vf acc[MR][TNB];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < TNB; ++j) acc[i][j] = load ? vload(C + i * ldc + j * VW) : splat(0.f);
  for (int k = 0; k < K; ++k) {
    vf b[TNB];
    for (int j = 0; j < TNB; ++j) b[j] = vload(B + k * ldb + j * VW);
    for (int i = 0; i < MR; ++i) {
      const float* ap = LDA ? A + i * LDA + k : A + k * MR + i;
#if defined(__AVX512F__)
      const vf a = (vf)_mm512_set1_ps(*ap);
#elif defined(__AVX__)
      const vf a = (vf)_mm256_broadcast_ss(ap);
#else
      const vf a = splat(*ap);
#endif
      for (int j = 0; j < TNB; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < TNB; ++j) vstore(C + i * ldc + j * VW, acc[i][j]);
}

// A (M x K, leading dimension lda) as blocks of TMR rows, each column by column.
inline void pack_a(const float* A, long lda, int M, int K, float* out) {
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) out[((long)(i / TMR) * K + k) * TMR + i % TMR] = A[i * lda + k];
}

// C (M x N) (+)= A (M x K) B (K x N): A packed by pack_a (LDA 0) or row-major
// with leading dimension LDA; M a multiple of TMR, N of TNC.
template <int LDA>
inline void gemm(const float* A, const float* B, long ldb, int M, int N, int K, float* C,
                 long ldc, bool load) {
  for (int i = 0; i < M; i += TMR)
    for (int c = 0; c < N; c += TNC)
      mk<TMR, LDA>(LDA ? A + (long)i * LDA : A + (long)i * K, B + c, ldb, K, C + i * ldc + c,
                   ldc, load);
}

// dst (cols x rows) = src (rows x cols, leading dimension ld)^T; 8 x 8 blocks
// in registers where the CPU has AVX (rows and cols multiples of 8 there).
inline void transpose(const float* src, long ld, int rows, int cols, float* dst) {
#if defined(__AVX__)
  if (rows % 8 == 0 && cols % 8 == 0) {
    for (int r0 = 0; r0 < rows; r0 += 8)
      for (int c0 = 0; c0 < cols; c0 += 8) {
        __m256 v[8], t[8];
        for (int i = 0; i < 8; ++i) v[i] = _mm256_loadu_ps(src + (r0 + i) * ld + c0);
        for (int i = 0; i < 8; i += 2) {
          t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
          t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
          v[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
          v[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
          v[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
          v[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int i = 0; i < 4; ++i) {
          t[i] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x20);
          t[i + 4] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x31);
        }
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (long)(c0 + i) * rows + r0, t[i]);
      }
    return;
  }
#endif
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[(long)c * rows + r] = src[r * ld + c];
}

// A zeroed float buffer on 64-byte boundaries: vectors of a tile then never
// straddle cache lines (std::vector's 16-byte alignment made the products 2x slower).
class Buf {
 public:
  explicit Buf(size_t n) : n_(n), p_(static_cast<float*>(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64))) {
    std::memset(p_, 0, n * sizeof(float));
  }
  Buf(const Buf& o) : Buf(o.n_) { std::memcpy(p_, o.p_, n_ * sizeof(float)); }
  Buf& operator=(const Buf&) = delete;
  ~Buf() { std::free(p_); }
  float* data() { return p_; }
  const float* data() const { return p_; }
  size_t size() const { return n_; }
  float& operator[](size_t i) { return p_[i]; }
  float operator[](size_t i) const { return p_[i]; }
  void swap(Buf& o) {
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
  }

 private:
  size_t n_;
  float* p_;
};

// A store that bypasses the caches (no read of the line first): for arrays
// written now and read only in the backward pass.  p aligned to the vector.
inline void vstream(float* p, vf v) {
#if defined(__AVX512F__)
  _mm512_stream_ps(p, (__m512)v);
#elif defined(__AVX__)
  _mm256_stream_ps(p, (__m256)v);
#else
  vstore(p, v);
#endif
}

inline float hsum(vf v) {
  float t = 0.0f;
  for (int i = 0; i < VW; ++i) t += v[i];
  return t;
}

// tanh(x) and sigmoid(y) with one division (the slowest vector instruction):
// with u = exp(2x), v = exp(-y) and q = 1 / ((u + 1)(1 + v)), tanh = (u - 1)(1
// + v) q and sigmoid = (u + 1) q.  x is clamped to +-9 (tanh is 1.0f there) and
// y to +-40, where the product stays finite; sigmoid then differs from 0 by
// less than 5e-18 below -40.
inline void gate_acts(vf x, vf y, vf& th, vf& sg) {
  x = x < splat(9.0f) ? x : splat(9.0f);
  x = x > splat(-9.0f) ? x : splat(-9.0f);
  y = y < splat(40.0f) ? y : splat(40.0f);
  y = y > splat(-40.0f) ? y : splat(-40.0f);
  const vf u = vexp(x + x), v = vexp(-y);
  const vf up = u + 1.0f, vp = 1.0f + v;
  const vf q = 1.0f / (up * vp);
  th = (u - 1.0f) * vp * q;
  sg = up * q;
}

struct StackDims {
  int B, T, L, R, G, H, S, F, hop, nc, r;
  long xs_l, act_l;  // layer strides of xs and acts
};

inline StackDims dims_of(const WnStack& s) {
  StackDims d{s.B, s.T, s.L, s.R, s.G, s.G / 2, s.S, s.F, s.hop, s.n_coef, s.n_coef / 2, 0, 0};
  d.xs_l = (long)s.B * s.R * s.T;
  d.act_l = (long)s.B * s.G * s.T;
  return d;
}

// The conditioning of tile [t0, t0 + TT) of layer l, batch b: offset plus the
// frames stretched by their coefficients; into ht (G x TT).
inline void cond_tile(const WnStack& s, const StackDims& d, int b, int l, int t0, float* ht) {
  const float* off = s.offset + ((long)b * d.L + l) * d.G;
  if (!s.proj) {
    for (int g = 0; g < d.G; ++g)
      for (int c = 0; c < TT; c += VW) vstore(ht + g * TT + c, splat(off[g]));
    return;
  }
  const float* P = s.proj + ((long)b * d.L + l) * d.G * d.F;
  for (int c0 = 0; c0 < TT;) {
    const int t = t0 + c0, f = t / d.hop, p0 = t % d.hop;
    const int n = std::min(TT - c0, d.hop - p0);  // samples of frame f: a multiple of VW
    int js[16], nj = 0;  // the taps whose frame lies inside the sequence
    for (int j = 0; j < d.nc && nj < 16; ++j)
      if (f + j - d.r >= 0 && f + j - d.r < d.F) js[nj++] = j;
    for (int g = 0; g < d.G; ++g) {
      const float* pg = P + (long)g * d.F + f - d.r;
      float* h = ht + g * TT + c0;
      for (int c = 0; c < n; c += VW) {
        vf acc = splat(off[g]);
        for (int k = 0; k < nj; ++k)
          acc += pg[js[k]] * vload(s.coef + ((long)f * d.nc + js[k]) * d.hop + p0 + c);
        vstore(h + c, acc);
      }
    }
    c0 += n;
  }
}

// Tile [t0, t0 + TT) of x (R rows, stride T) and of x delayed by dil (zeros
// before the start) into xp (2R x TT): the dilated product's right operand.
inline void pack_taps(const float* x, const StackDims& d, int t0, int dil, float* xp) {
  for (int i = 0; i < d.R; ++i) {
    const float* src = x + (long)i * d.T + t0;
    std::memcpy(xp + i * TT, src, TT * sizeof(float));
    float* dst = xp + (d.R + i) * TT;
    if (t0 >= dil) {
      std::memcpy(dst, src - dil, TT * sizeof(float));
    } else {
      for (int c = 0; c < TT; ++c) dst[c] = t0 + c >= dil ? src[c - dil] : 0.0f;
    }
  }
}

inline void stack_forward_one(const WnStack& s, const StackDims& d, int b) {
  Buf xp(2 * d.R * TT), ht(d.G * TT), zt(d.H * TT), ot((d.S + d.R) * TT);
  Buf wd_p((long)d.G * 2 * d.R), wo_p((long)(d.S + d.R) * d.H);
  // the activations bypass the caches where their rows are vector-aligned
  const bool stream = reinterpret_cast<uintptr_t>(s.acts) % (VW * sizeof(float)) == 0 &&
                      d.T % VW == 0;
  const float sc = s.scale;
  float* skips = s.skips + (long)b * d.S * d.T;
  for (int l = 0; l < d.L; ++l) {
    const float* x = s.xs + l * d.xs_l + (long)b * d.R * d.T;
    float* xn = l + 1 < d.L ? s.xs + (l + 1) * d.xs_l + (long)b * d.R * d.T : nullptr;
    float* act = s.acts + l * d.act_l + (long)b * d.G * d.T;
    const float* Wd = s.w_dil + (long)l * d.G * 2 * d.R;
    const float* Wo = s.w_out + (long)l * (d.S + d.R) * d.H;
    const float* br = s.b_res + (long)l * d.R;
    const int dil = s.dilations[l];
    const int rows_out = xn ? d.S + d.R : d.S;
    pack_a(Wd, 2 * d.R, d.G, 2 * d.R, wd_p.data());
    pack_a(Wo, d.H, d.S + d.R, d.H, wo_p.data());
    for (int t0 = 0; t0 < d.T; t0 += TT) {
      pack_taps(x, d, t0, dil, xp.data());
      cond_tile(s, d, b, l, t0, ht.data());
      gemm<0>(wd_p.data(), xp.data(), TT, d.G, TT, 2 * d.R, ht.data(), TT, true);
      for (int g = 0; g < d.H; ++g) {
        float* th = act + (long)g * d.T + t0;
        float* sg = act + (long)(g + d.H) * d.T + t0;
        for (int c = 0; c < TT; c += VW) {
          vf a, e;
          gate_acts(vload(ht.data() + g * TT + c), vload(ht.data() + (g + d.H) * TT + c), a, e);
          if (stream) {
            vstream(th + c, a);
            vstream(sg + c, e);
          } else {
            vstore(th + c, a);
            vstore(sg + c, e);
          }
          vstore(zt.data() + g * TT + c, a * e);
        }
      }
      gemm<0>(wo_p.data(), zt.data(), TT, rows_out, TT, d.H, ot.data(), TT, false);
      for (int i = 0; i < d.S; ++i) {
        float* o = skips + (long)i * d.T + t0;
        const float* a = ot.data() + i * TT;
        for (int c = 0; c < TT; c += VW) vstore(o + c, (l ? vload(o + c) : splat(0.f)) + vload(a + c));
      }
      if (xn)
        for (int i = 0; i < d.R; ++i) {
          float* o = xn + (long)i * d.T + t0;
          const float* a = ot.data() + (d.S + i) * TT;
          const float* xi = xp.data() + i * TT;
          for (int c = 0; c < TT; c += VW)
            vstore(o + c, (vload(xi + c) + vload(a + c) + br[i]) * sc);
        }
    }
  }
}

// Gradients shared by all batch elements, one copy per thread then summed.
struct StackGrads {
  Buf w_dil, w_out, b_res, coef;
  explicit StackGrads(const StackDims& d)
      : w_dil((long)d.L * d.G * 2 * d.R), w_out((long)d.L * (d.S + d.R) * d.H),
        b_res((long)d.L * d.R), coef((long)d.F * d.nc * d.hop) {}
};

inline void stack_backward_one(const WnStack& s, const StackDims& d, int b, StackGrads& gr) {
  const float sc = s.scale;
  Buf dout((long)d.R * d.T), dx((long)d.R * d.T);
  Buf gin((d.S + d.R) * TT), dzt(d.H * TT), zt(d.H * TT), zT(TT * d.H);
  Buf xp(2 * d.R * TT), xpT(TT * 2 * d.R), dsh(d.G * TT);
  // The gate's gradient of the last few tiles (G x TT each), as far back as
  // the input's gradient reads it (t + dil): it never leaves the caches.
  int max_dil = 1;
  for (int l = 0; l < d.L; ++l) max_dil = std::max(max_dil, s.dilations[l]);
  const int slots = (max_dil + TT - 1) / TT + 2;
  Buf ring((long)slots * d.G * TT);
  auto slot = [&](int t0) { return ring.data() + (long)(t0 / TT % slots) * d.G * TT; };
  Buf woT((long)d.H * (d.S + d.R)), wdT1((long)d.R * d.G), wdT0((long)d.R * d.G);
  Buf tmp(std::max((long)d.H * (d.S + d.R), (long)d.R * 2 * d.G));
  std::vector<vf> dcp(d.G, splat(0.0f));  // per-row partial sums of d_proj
  const float* dskips = s.d_skips + (long)b * d.S * d.T;
  for (int l = d.L - 1; l >= 0; --l) {
    const bool res = l + 1 < d.L;  // dout: the gradient of this layer's output
    const float* x = s.xs + l * d.xs_l + (long)b * d.R * d.T;
    const float* act = s.acts + l * d.act_l + (long)b * d.G * d.T;
    const float* Wd = s.w_dil + (long)l * d.G * 2 * d.R;
    const float* Wo = s.w_out + (long)l * (d.S + d.R) * d.H;
    float* gWd = gr.w_dil.data() + (long)l * d.G * 2 * d.R;
    float* gWo = gr.w_out.data() + (long)l * (d.S + d.R) * d.H;
    float* gbr = gr.b_res.data() + (long)l * d.R;
    const int dil = s.dilations[l];
    const int kin = res ? d.S + d.R : d.S;
    transpose(Wo, d.H, d.S + d.R, d.H, tmp.data());  // (H x S+R)
    pack_a(tmp.data(), d.S + d.R, d.H, kin, woT.data());
    for (int i = 0; i < d.R; ++i)  // [W1^T | W0^T]: (R x 2G)
      for (int g = 0; g < d.G; ++g) {
        tmp[(long)i * 2 * d.G + g] = Wd[(long)g * 2 * d.R + i];
        tmp[(long)i * 2 * d.G + d.G + g] = Wd[(long)g * 2 * d.R + d.R + i];
      }
    pack_a(tmp.data(), 2 * d.G, d.R, d.G, wdT1.data());
    pack_a(tmp.data() + d.G, 2 * d.G, d.R, d.G, wdT0.data());
    float* doff = s.d_offset + ((long)b * d.L + l) * d.G;
    float* dP = s.d_proj ? s.d_proj + ((long)b * d.L + l) * d.G * d.F : nullptr;
    const float* P = s.proj ? s.proj + ((long)b * d.L + l) * d.G * d.F : nullptr;
    // tiles from the end: the input's gradient at t needs the gate's at t + dil,
    // computed a tile or two before and still in the cache
    for (int t0 = d.T - TT; t0 >= 0; t0 -= TT) {
      float* const dht = slot(t0);
      for (int i = 0; i < d.S; ++i)
        std::memcpy(gin.data() + i * TT, dskips + (long)i * d.T + t0, TT * sizeof(float));
      if (res)
        for (int i = 0; i < d.R; ++i) {
          float* g = gin.data() + (d.S + i) * TT;
          const float* src = dout.data() + (long)i * d.T + t0;
          vf sum = splat(0.0f);
          for (int c = 0; c < TT; c += VW) {
            const vf v = vload(src + c) * sc;
            vstore(g + c, v);
            sum += v;
          }
          gbr[i] += hsum(sum);
        }
      gemm<0>(woT.data(), gin.data(), TT, d.H, TT, kin, dzt.data(), TT, false);
      for (int g = 0; g < d.H; ++g) {
        const float* th = act + (long)g * d.T + t0;
        const float* sg = act + (long)(g + d.H) * d.T + t0;
        for (int c = 0; c < TT; c += VW) {
          const vf a = vload(th + c), e = vload(sg + c), dz = vload(dzt.data() + g * TT + c);
          vstore(dht + g * TT + c, dz * e * (1.0f - a * a));
          vstore(dht + (g + d.H) * TT + c, dz * a * e * (1.0f - e));
          vstore(zt.data() + g * TT + c, a * e);
        }
      }
      transpose(zt.data(), TT, d.H, TT, zT.data());
      // weight gradients: sums over the tile's samples
      gemm<TT>(gin.data(), zT.data(), d.H, kin, d.H, TT, gWo, d.H, true);
      pack_taps(x, d, t0, dil, xp.data());
      transpose(xp.data(), TT, 2 * d.R, TT, xpT.data());
      gemm<TT>(dht, xpT.data(), 2 * d.R, d.G, 2 * d.R, TT, gWd, 2 * d.R, true);
      for (int g = 0; g < d.G; ++g) {
        vf sum = splat(0.0f);
        for (int c = 0; c < TT; c += VW) sum += vload(dht + g * TT + c);
        doff[g] += hsum(sum);
      }
      if (P) {
        for (int c0 = 0; c0 < TT;) {
          const int t = t0 + c0, f = t / d.hop, p0 = t % d.hop;
          const int n = std::min(TT - c0, d.hop - p0);  // a multiple of VW (stack_check)
          for (int j = 0; j < d.nc; ++j) {
            const int src = f + j - d.r;
            if (src < 0 || src >= d.F) continue;
            const float* cf = s.coef + ((long)f * d.nc + j) * d.hop + p0;
            float* gcf = gr.coef.data() + ((long)f * d.nc + j) * d.hop + p0;
            for (int c = 0; c < n; c += VW) {
              const vf cv = vload(cf + c);
              vf gc = vload(gcf + c);
              for (int g = 0; g < d.G; ++g) {
                const vf dg = vload(dht + g * TT + c0 + c);
                gc += dg * P[(long)g * d.F + src];
                dcp[g] += dg * cv;
              }
              vstore(gcf + c, gc);
            }
            for (int g = 0; g < d.G; ++g) {
              dP[(long)g * d.F + src] += hsum(dcp[g]);
              dcp[g] = splat(0.0f);
            }
          }
          c0 += n;
        }
      }
      // the input's gradient: s dout + W1^T dh(t) + W0^T dh(t + dil)
      // dsh: the gate's gradient at t + dil, from (at most) two tiles of the ring
      for (int c = 0; c < TT;) {
        const int t = t0 + dil + c, n = std::min(TT - c, TT - t % TT);
        for (int g = 0; g < d.G; ++g) {
          float* dst = dsh.data() + g * TT + c;
          if (t < d.T)
            std::memcpy(dst, slot(t - t % TT) + g * TT + t % TT, n * sizeof(float));
          else
            std::memset(dst, 0, n * sizeof(float));
        }
        c += n;
      }
      float* o = dx.data() + t0;
      for (int i = 0; i < d.R; ++i) {
        float* oi = o + (long)i * d.T;
        const float* di = dout.data() + (long)i * d.T + t0;
        for (int c = 0; c < TT; c += VW) vstore(oi + c, res ? vload(di + c) * sc : splat(0.0f));
      }
      gemm<0>(wdT1.data(), dht, TT, d.R, TT, d.G, o, d.T, true);
      gemm<0>(wdT0.data(), dsh.data(), TT, d.R, TT, d.G, o, d.T, true);
    }
    dx.swap(dout);
  }
  std::memcpy(s.d_x0 + (long)b * d.R * d.T, dout.data(), (long)d.R * d.T * sizeof(float));
}

inline int stack_check(const WnStack& s) {
  if (s.B < 1 || s.L < 1 || s.T < TT || s.T % TT) return 1;
  if (s.R % 16 || s.G % 32 || s.S % 16) return 2;
  if (s.proj && (s.F * s.hop != s.T || s.n_coef % 2 == 0 || s.hop % 16)) return 3;
  return 0;
}

// Runs fn(thread, b) for every batch element, the elements spread over at
// most n_threads threads.  With OpenMP these are the threads of the OpenMP
// runtime torch already loaded (same soname: the loader shares it), whose
// workers spin for a while after each torch op: threads of our own then
// competed with them for the cores (measured 15-20% slower).
template <typename Fn>
inline void for_elements(int B, int n_threads, Fn fn) {
  const int nt = std::max(1, std::min(n_threads, B));
#if defined(_OPENMP)
#pragma omp parallel num_threads(nt)
  {
    const int i = omp_get_thread_num(), n = omp_get_num_threads();
    for (int b = i; b < B; b += n) fn(i, b);
  }
#else
  std::vector<std::thread> pool;
  auto body = [&](int i) {
    for (int b = i; b < B; b += nt) fn(i, b);
  };
  for (int i = 1; i < nt; ++i) pool.emplace_back(body, i);
  body(0);
  for (auto& th : pool) th.join();
#endif
}

}  // namespace wn
