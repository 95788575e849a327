// int8 weights: activation quantization and integer panel products.
#pragma once

#include <cstring>
#include <type_traits>
#include <vector>

#include "matvec.h"
#include "wavenet_abi.h"

namespace wn {

// ------------------------------------------------------- int8 weights
// Each matrix row has a scale (max |w| / 127) and int8 weights; an activation
// vector is quantized on the fly the same way (one scale per vector) and
// offset to unsigned (q + 128).  The offset is removed with the row's
// precomputed 128 * sum(w).  Panels: VW rows, columns in groups of 4, so a
// panel's group is one vector (lane = row, 4 bytes = 4 columns).
//
// The products, per instruction set (Int8Path in wavenet_abi.h):
// - AVX-512 VNNI: vpdpbusd, 64 byte products into 16 int32 lanes at once;
// - AVX-VNNI (Alder Lake and later, no AVX-512): the VEX vpdpbusd, 32 at once;
// - AVX-512BW, AVX2, one stream: sign and magnitude.  The activation's sign
//   moves onto the weight (AVX-512: a masked byte negation; AVX2: an xor, see
//   ones_correction), its
//   magnitude |q| <= 128 is the unsigned operand of vpmaddubsw, whose int16
//   pair sums then stay within 2 * 128 * 127 = 32512 (with the offset bytes,
//   2 * 255 * 127 would saturate), and vpmaddwd by ones forms vpdpbusd's
//   4-column lane sums: 4 instructions per vector of products instead of 6;
// - AVX-512BW, several streams: bytes widened to int16 (vpmovsxbw) once
//   per weight vector for all streams, and vpmaddwd, whose pair sums (at most
//   2 * 255 * 127) land in two int32 lanes per row, added at the end; AVX2,
//   several streams: the one-stream products stream by stream (see matvec_q);
// - Arm with the dot-product extension: sdot (signed x signed) on the
//   activations as signed bytes (q = offset byte - 128, one bit flip), the
//   row's 128 * sum(w) added back, so the sums equal the unsigned ones;
// - otherwise a scalar loop.
// Every path forms the same exact integer sums (tests/unit/test_kernel_int8.py),
// so every thread layout, and every int8 path of one vector width, rounds
// identically.
#if defined(__AVX512VNNI__)
#define WN_INT8_DPBUSD 1
constexpr int INT8_PATH = WN_INT8_AVX512VNNI;
#elif !defined(__AVX512F__) && (defined(__AVXVNNI__) || defined(WN_AVXVNNI_AS_EVEX))
#define WN_INT8_DPBUSD 1
constexpr int INT8_PATH = WN_INT8_AVXVNNI;
#elif defined(__AVX512BW__)
#define WN_INT8_WIDENED 1
constexpr int INT8_PATH = WN_INT8_AVX512BW;
#elif defined(__AVX2__)
#define WN_INT8_WIDENED 1
constexpr int INT8_PATH = WN_INT8_AVX2;
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
constexpr int INT8_PATH = WN_INT8_NEON_DOTPROD;
#else
constexpr int INT8_PATH = WN_INT8_SCALAR;
#endif

// max |x| over n floats (n % VW == 0): two chains, then the lanes (hmax).
inline float max_abs(const float* x, int n) {
  const vi magnitude = vi{} + 0x7fffffff;
  vf m0{}, m1{};
  int i = 0;
  for (; i + 2 * VW <= n; i += 2 * VW) {
    m0 = vmax(m0, (vf)((vi)vload(x + i) & magnitude));
    m1 = vmax(m1, (vf)((vi)vload(x + i + VW) & magnitude));
  }
  if (i < n) m0 = vmax(m0, (vf)((vi)vload(x + i) & magnitude));
  return hmax(vmax(m0, m1));
}

// Quantize n floats (n % 16 == 0) to offset bytes; returns the scale.
inline float quantize(const float* x, int n, uint8_t* q) {
  const float m = max_abs(x, n);
  if (!(m > 0.0f)) {
    std::memset(q, 128, n);
    return 0.0f;
  }
  const float inv = 127.0f / m;
  int i = 0;
#if defined(__AVX512F__)
  for (; i < n; i += VW) {
    __m512i v = _mm512_cvtps_epi32((__m512)(vload(x + i) * inv));
    v = _mm512_add_epi32(v, _mm512_set1_epi32(128));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
  }
#elif defined(__AVX2__)
  // 32 values at a time: rounded as cvtps (to nearest even) into -127..127,
  // packed with signed saturation (lane-wise, then put in order), offset by
  // an xor of the sign bit.
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_cvtps_epi32((__m256)(vload(x + i) * inv));
    const __m256i b = _mm256_cvtps_epi32((__m256)(vload(x + i + 8) * inv));
    const __m256i c = _mm256_cvtps_epi32((__m256)(vload(x + i + 16) * inv));
    const __m256i d = _mm256_cvtps_epi32((__m256)(vload(x + i + 24) * inv));
    __m256i v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i),
                        _mm256_xor_si256(v, _mm256_set1_epi8(-128)));
  }
  for (; i < n; i += VW) {
    const __m256i v = _mm256_cvtps_epi32((__m256)(vload(x + i) * inv));
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i),
                     _mm_xor_si128(_mm_packs_epi16(w16, w16), _mm_set1_epi8(-128)));
  }
#endif
  for (; i < n; ++i) q[i] = (uint8_t)(std::nearbyint(x[i] * inv) + 128.0f);
  return m / 127.0f;
}

#if defined(WN_INT8_WIDENED)
// AVX-512BW and AVX2 products.  Widened (several streams): per panel two
// accumulators of pair sums (rows of the first and the second half of the
// panel, two int32 lanes per row).  Sign and magnitude (one stream): one
// accumulator per panel, vpdpbusd's lanes.
#if defined(__AVX512BW__)
typedef __m512i wide;
inline wide widen_w(const int8_t* p) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline wide splat_x(const int16_t* x) {  // 4 widened activations: one broadcast load
  int64_t v;
  std::memcpy(&v, x, 8);
  return _mm512_set1_epi64(v);
}
inline wide madd(wide a, wide b) { return _mm512_madd_epi16(a, b); }
inline wide add(wide a, wide b) { return _mm512_add_epi32(a, b); }
// acc += x in place: written as a plain add, GCC kept each accumulator in two
// registers with a copy per add (one more instruction per vector of products).
inline void add_to(wide& acc, wide x) { asm("vpaddd %1, %0, %0" : "+v"(acc) : "v"(x)); }
// Sign and magnitude: 4 activation bytes' signs, repeated, and the weights
// negated where they are negative.
typedef __mmask64 vsign;
inline wide splat_q(const int8_t* x) {  // 4 offset bytes -> 4 signed q, repeated
  int32_t b;
  std::memcpy(&b, x, 4);
  return _mm512_xor_si512(_mm512_set1_epi32(b), _mm512_set1_epi8(-128));
}
inline vsign sign_of(wide q) { return _mm512_movepi8_mask(q); }
inline wide magnitude(wide q) { return _mm512_abs_epi8(q); }  // -128 -> 128 (unsigned)
inline wide signed_w(const int8_t* p, vsign sg) {
  const __m512i w = _mm512_loadu_si512(p);
  return _mm512_mask_sub_epi8(w, sg, _mm512_setzero_si512(), w);
}
inline wide dot4(wide a, wide w) {  // per int32 lane: 4 unsigned a times 4 signed w
  return _mm512_madd_epi16(_mm512_maddubs_epi16(a, w), _mm512_set1_epi16(1));
}
inline vi row_sums(wide lo, wide hi) {  // lane r: pair sums 2r and 2r + 1
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  return (vi)_mm512_add_epi32(_mm512_permutex2var_epi32(lo, even, hi),
                              _mm512_permutex2var_epi32(lo, odd, hi));
}
#else
typedef __m256i wide;
inline wide widen_w(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline wide splat_x(const int16_t* x) {
  int64_t v;
  std::memcpy(&v, x, 8);
  return _mm256_set1_epi64x(v);
}
inline wide madd(wide a, wide b) { return _mm256_madd_epi16(a, b); }
inline wide add(wide a, wide b) { return _mm256_add_epi32(a, b); }
inline void add_to(wide& acc, wide x) { asm("vpaddd %1, %0, %0" : "+x"(acc) : "x"(x)); }
// AVX2 flips the weights by an xor where the activation is negative (one's
// complement, -w - 1) instead of negating them by vpsignb: vpsignb, vpmaddubsw
// and vpmaddwd share the same two ports (Intel p0/p1; on Zen 4 measured 0.5
// cycles each, 1.5 for the three), an xor runs on any vector port.  Each
// flipped weight adds -|q| to its row's sum, the same for every row, so the
// product adds that sum back once (ones_correction); flipped weights lie in
// [-128, 126], so pair sums stay within 2 * 128 * -128 = -32768.  128 x 64
// products, in-process A/B on Zen 4: 0.91x the time, the same sums.
#define WN_INT8_ONES_COMPLEMENT 1
typedef __m256i vsign;
inline wide splat_q(const int8_t* x) {
  int32_t b;
  std::memcpy(&b, x, 4);
  return _mm256_xor_si256(_mm256_set1_epi32(b), _mm256_set1_epi8(-128));
}
inline vsign sign_of(wide q) { return _mm256_cmpgt_epi8(_mm256_setzero_si256(), q); }
inline wide magnitude(wide q) { return _mm256_abs_epi8(q); }
inline wide signed_w(const int8_t* p, vsign sg) {
  return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), sg);
}
// The sum over the negative q of |q|: 128 - offset byte, saturated at 0.
inline int32_t ones_correction(const uint8_t* xq, int n) {
  __m128i acc = _mm_setzero_si128();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i neg = _mm_subs_epu8(_mm_set1_epi8(-128),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + i)));
    acc = _mm_add_epi64(acc, _mm_sad_epu8(neg, _mm_setzero_si128()));
  }
  int32_t e = (int32_t)(_mm_cvtsi128_si64(acc) + _mm_extract_epi64(acc, 1));
  for (; i < n; ++i) e += xq[i] < 128 ? 128 - xq[i] : 0;
  return e;
}
inline wide dot4(wide a, wide w) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), _mm256_set1_epi16(1));
}
inline vi row_sums(wide lo, wide hi) {
  // hadd works within 128-bit halves: rows 0 1 4 5 | 2 3 6 7 -> put in order.
  return (vi)_mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}
#endif
#endif

#if defined(WN_INT8_DPBUSD)
// vpdpbusd: per int32 lane, 4 unsigned activation bytes times 4 signed weights.
#if defined(__AVX512VNNI__)
typedef __m512i vbytes;
inline vbytes load_bytes(const int8_t* p) { return _mm512_loadu_si512(p); }
inline vbytes splat4(int32_t xb) { return _mm512_set1_epi32(xb); }
inline vi dpbusd(vi acc, vbytes x, vbytes w) {
  return (vi)_mm512_dpbusd_epi32((__m512i)acc, x, w);
}
#else
typedef __m256i vbytes;
inline vbytes load_bytes(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline vbytes splat4(int32_t xb) { return _mm256_set1_epi32(xb); }
#if defined(WN_AVXVNNI_AS_EVEX)
// A stand-in to check this path on CPUs with AVX-512 VNNI but without AVX-VNNI
// (AMD Zen 4/5; no emulator runs AVX-VNNI): the EVEX encoding of the same instruction on
// ymm0-15, written as asm so the build stays AVX2 (-DWN_AVXVNNI_AS_EVEX, tests).
inline vi dpbusd(vi acc, vbytes x, vbytes w) {
  __m256i a = (__m256i)acc;
  asm("%{evex%} vpdpbusd %2, %1, %0" : "+v"(a) : "v"(x), "v"(w));
  return (vi)a;
}
#else
inline vi dpbusd(vi acc, vbytes x, vbytes w) {
  return (vi)_mm256_dpbusd_avx_epi32((__m256i)acc, x, w);
}
#endif
#endif
#endif

// Panels per register block of the int8 products (the widened ones hold two
// accumulators per panel).
template <int S, typename XT>
constexpr int panels_per_block_q() {
#if defined(WN_INT8_WIDENED)
  if (!std::is_same<XT, int8_t>::value)
    return panels_per_block<S>() > 1 ? panels_per_block<S>() / 2 : 1;
#if defined(WN_INT8_ONES_COMPLEMENT)
  // AVX2's xor products hold 8 accumulators and 4 shared registers without a
  // spill: 8-panel blocks measured 0.95x (128 rows) and 0.89x (64 rows) the
  // time of 6 (in-process A/B, Zen 4, stop 35).
  if (S == 1) return 8;
#endif
#endif
  return panels_per_block<S>();
}

// y[s] = init[s] + sr * ((W xq[s] - cs) * sx[s]) for NV consecutive panels.
// XT: the activations as offset bytes; for the widened products, as matvec_q
// passes them: widened to int16 (several streams), or int8_t (one stream): the
// offset bytes read as sign and magnitude, whose products W q need no offset
// removed.
template <int NV, int S, typename XT = uint8_t>
inline void mvq_panels(const int8_t* W, size_t pstride, int cols, const XT* xq, int xqs,
                       const float* sx, float* y, int ys, const float* init, int is,
                       const float* sr, const int32_t* cs, int32_t corr = 0) {
  vi acc[S][NV];
  constexpr bool sign_mag = std::is_same<XT, int8_t>::value;
#if defined(WN_INT8_WIDENED)
  if constexpr (sign_mag) {
    static_assert(S == 1, "sign and magnitude: one stream");
    wide sum[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) sum[v] = wide{};
    for (int g = 0; g < cols / 4; ++g) {
      const wide q = splat_q(xq + 4 * g);
      const vsign sg = sign_of(q);
      const wide a = magnitude(q);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        add_to(sum[v], dot4(a, signed_w(W + v * pstride + (size_t)g * 4 * VW, sg)));
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[0][v] = (vi)sum[v];
  } else {
  wide lo[S][NV], hi[S][NV];
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) lo[s][v] = hi[s][v] = wide{};
  for (int g = 0; g < cols / 4; ++g) {
    wide wl[NV], wh[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int8_t* wp = W + v * pstride + (size_t)g * 4 * VW;
      wl[v] = widen_w(wp);
      wh[v] = widen_w(wp + 2 * VW);
    }
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const wide xv = splat_x(xq + s * xqs + 4 * g);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        lo[s][v] = add(lo[s][v], madd(wl[v], xv));
        hi[s][v] = add(hi[s][v], madd(wh[v], xv));
      }
    }
  }
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[s][v] = row_sums(lo[s][v], hi[s][v]);
  }
#else
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[s][v] = vi{};
  for (int g = 0; g < cols / 4; ++g) {
#if defined(WN_INT8_DPBUSD)
    vbytes w[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) w[v] = load_bytes(W + v * pstride + (size_t)g * 4 * VW);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      int32_t xb;
      std::memcpy(&xb, xq + s * xqs + 4 * g, 4);
      const vbytes xv = splat4(xb);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[s][v] = dpbusd(acc[s][v], xv, w[v]);
    }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
    int8x16_t w[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) w[v] = vld1q_s8(W + v * pstride + (size_t)g * 4 * VW);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      uint32_t xb;
      std::memcpy(&xb, xq + s * xqs + 4 * g, 4);
      const int8x16_t xv = vreinterpretq_s8_u32(vdupq_n_u32(xb ^ 0x80808080u));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[s][v] = (vi)vdotq_s32((int32x4_t)acc[s][v], w[v], xv);
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
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
  // Signed activations: add back the 128 * sum(w) that the offset bytes carry.
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[s][v] += vload(cs + v * VW);
#endif
#endif
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const vi c = sign_mag ? vi{} - corr : vload(cs + v * VW);
      const vf f = __builtin_convertvector(acc[s][v] - c, vf);
      vstore(y + s * ys + v * VW, vload(init + s * is + v * VW) + vload(sr + v * VW) * (f * sx[s]));
    }
}

// Rows [p0, p1) panels of a quantized matrix for S streams whose activations
// (XT: offset bytes or widened) are given (see matvec; the block loop is
// written out in both: a shared generic-lambda version measured ~15% slower at
// batch 1, int8).
template <int S, typename XT>
void mvq_blocks(const int8_t* W, int p0, int p1, int cols, const XT* xa, int xas,
                const float* sx, float* y, int ys, const float* init, int is, const float* sr,
                const int32_t* cs, int32_t corr = 0) {
  constexpr int NV = panels_per_block_q<S, XT>();
  const size_t ps = (size_t)cols * VW;
  int p = p0;
  for (; p + NV <= p1; p += NV)
    mvq_panels<NV, S, XT>(W + p * ps, ps, cols, xa, xas, sx, y + p * VW, ys, init + p * VW, is,
                          sr + p * VW, cs + p * VW, corr);
  if (NV > 4)
    for (; p + 4 <= p1; p += 4)
      mvq_panels<4, S, XT>(W + p * ps, ps, cols, xa, xas, sx, y + p * VW, ys, init + p * VW, is,
                           sr + p * VW, cs + p * VW, corr);
  if (NV > 2)
    for (; p + 2 <= p1; p += 2)
      mvq_panels<2, S, XT>(W + p * ps, ps, cols, xa, xas, sx, y + p * VW, ys, init + p * VW, is,
                           sr + p * VW, cs + p * VW, corr);
  for (; p < p1; ++p)
    mvq_panels<1, S, XT>(W + p * ps, ps, cols, xa, xas, sx, y + p * VW, ys, init + p * VW, is,
                         sr + p * VW, cs + p * VW, corr);
}

// The same from S streams' offset bytes (stream s: xq + s * xqs).
template <int S>
void matvec_q(const int8_t* W, int p0, int p1, int cols, const uint8_t* xq, int xqs,
              const float* sx, float* y, int ys, const float* init, int is, const float* sr,
              const int32_t* cs) {
#if defined(WN_INT8_ONES_COMPLEMENT)
  // AVX2: the one-stream xor products, stream by stream for several streams
  // too (the matrix stays in L1 between them).  128 x 64 products for 4
  // streams from L1: 0.58-0.76x the time of the widened ones (Zen 3, whose
  // vpmovsxbw costs 1.3 cycles; the widened ones need 2 vpmaddwd per 16
  // weights and stream, these 2 multiplies per 32).
  for (int s = 0; s < S; ++s)
    mvq_blocks<1, int8_t>(W, p0, p1, cols, reinterpret_cast<const int8_t*>(xq + s * xqs), xqs,
                          sx + s, y + s * ys, ys, init + s * is, is, sr, cs,
                          ones_correction(xq + s * xqs, cols));
#elif defined(WN_INT8_WIDENED)
  if constexpr (S == 1) {
    // One stream: sign and magnitude (see mvq_panels): at batch 1, AVX2 and
    // AVX-512BW 1.28x and 1.13x the widened products (median of 5 runs each).
    mvq_blocks<1, int8_t>(W, p0, p1, cols, reinterpret_cast<const int8_t*>(xq), xqs, sx, y,
                          ys, init, is, sr, cs);
  } else {
    // AVX-512BW, several streams: the weights widened once for all of them,
    // their activations once per product, not once per panel block (a group's
    // 4 values are then one broadcast load; measured at batch 16: +12-19%).
    thread_local std::vector<int16_t> wide;
    if (wide.size() < (size_t)S * cols) wide.resize((size_t)S * cols);
    for (int s = 0; s < S; ++s)
      for (int i = 0; i < cols; ++i) wide[(size_t)s * cols + i] = xq[(size_t)s * xqs + i];
    mvq_blocks<S, int16_t>(W, p0, p1, cols, wide.data(), cols, sx, y, ys, init, is, sr, cs);
  }
#else
  mvq_blocks<S, uint8_t>(W, p0, p1, cols, xq, xqs, sx, y, ys, init, is, sr, cs);
#endif
}

}  // namespace wn
