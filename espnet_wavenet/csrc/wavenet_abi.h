// The C ABI of the generation kernel: the one description of the structs and
// constants Python passes through ctypes.  generation/cpu/abi.py reads this file
// and builds its ctypes structures from it, so nothing is mirrored by hand;
// keep declarations to one type per line group: `type name[, name...];` with
// type int32_t, int64_t, float or a pointer.
#pragma once

#include <cstdint>

#define WN_ABI_VERSION 15

extern "C" {

// Codes of WnModel's enumerated fields; Python names them from the lower-cased
// suffix (float32, float16, int8; mulaw, mol, gaussian; categorical, continuous).
enum WnPrecision { WN_PREC_FLOAT32, WN_PREC_FLOAT16, WN_PREC_INT8 };
enum WnDist { WN_DIST_MULAW, WN_DIST_MOL, WN_DIST_GAUSSIAN };
enum WnInput { WN_INPUT_CATEGORICAL, WN_INPUT_CONTINUOUS };
// How a build forms the int8 products (see int8.h).
enum WnInt8Path {
  WN_INT8_SCALAR,
  WN_INT8_AVX2,
  WN_INT8_AVX512BW,
  WN_INT8_AVX512VNNI,
  WN_INT8_NEON_DOTPROD,
  WN_INT8_AVXVNNI
};

// Network description; every pointer is owned by Python.  Sizes are padded to
// multiples of 16: Rp residual, Hp half-gate, Sp skip, Op output channels.
struct WnModel {
  int32_t L, K, Rp, Hp, Sp, Op, O;
  int32_t input_type;  // WnInput: class embedding, or a 1x1 conv of the sample value
  int32_t dist;        // WnDist: mu-law softmax, mixture of logistics, Gaussian
  int32_t n_mix, n_classes;
  int32_t prec;  // WnPrecision of the layers' matrices (int8: head in float32)
  float skip_scale;
  const int32_t* dil;
  const float* emb_w;  // categorical (n_classes, Rp); continuous (Rp)
  const float* emb_b;  // continuous (Rp)
  const void* wconv;   // L x K x packed (2 Hp, Rp): tap k (oldest first), rows by halves (see gate())
  const void* wrs;     // L x packed (Rp + Sp, Hp): residual rows then skip rows
  const float* brs;    // L x (Rp + Sp)
  const void* w1;      // packed (Sp, Sp)
  const float* b1;
  const void* w2;      // packed (Op, Sp)
  const float* b2;
  const float* dec;    // mu-law class -> sample value
  const int32_t* enc;  // mu-law class -> next input class
  // int8 (WN_PREC_INT8): conv as L x K quantized (2 Hp, Rp) matrices (tap k, oldest
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
  float tail;  // mu-law: probability taken from every class before drawing (0: none)
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

// Training: the residual stack of L layers (kernel size 2) on B batch
// elements of T samples, float32, all arrays contiguous and owned by Python
// (see train/residual_stack.py).  Forward: xs[0] given, writes xs[1:], acts
// and skips.  Backward: reads those and d_skips; writes d_x0 and the d_*
// gradients (d_offset and d_proj accumulated: zeros first).
struct WnStack {
  int32_t B, T, L, R, G, S, F, hop, n_coef, n_threads;
  float scale;                // residual scale (sqrt(0.5))
  const int32_t* dilations;  // [L]
  const float* w_dil;        // [L, G, 2R]: the newest tap's columns, then the delayed one's
  const float* w_out;        // [L, S + R, G/2]: skip rows, then residual rows
  const float* b_res;        // [L, R]
  const float* proj;         // [B, L, G, F] frame projections, or null (no conditioning)
  const float* coef;         // [F, n_coef, hop]: sample f*hop+p = sum_j coef[f,j,p] proj[f+j-n_coef/2]
  const float* offset;       // [B, L, G]: conv bias plus speaker term
  float* xs;                 // [L, B, R, T]: every layer's input
  float* acts;               // [L, B, G, T]: tanh, then sigmoid, of each gate
  float* skips;              // [B, S, T]: the sum of the layers' skip products
  const float* d_skips;      // [B, S, T]
  float* d_x0;               // [B, R, T]
  float* d_w_dil;
  float* d_w_out;
  float* d_b_res;
  float* d_proj;
  float* d_coef;
  float* d_offset;
};

// Slots of wn_profile's counters (bin/benchmark.py --profile names them from here).
enum WnProfileSlot {
  WN_P_STEPS,
  WN_P_TOTAL,
  WN_P_A_WAIT,
  WN_P_A_HEAD,
  WN_P_A_DRAW,
  WN_P_B_WAIT,
  WN_P_B_OLDER,
  WN_P_B_SKIPS,
  WN_P_A_CONV,  // thread A's parts of a_layers: newest taps,
  WN_P_A_GATE,  // gates,
  WN_P_A_RS,    // residual and skip products
  WN_P_N
};

int wn_abi_version();
const char* wn_source_sha256();
int wn_panel_rows();
int64_t wn_struct_size(int which);
int wn_int8_path();
// Test hook: y = W xq for n_streams streams (n_panels packed int8 panels of
// cols columns; offset activation bytes xq, cols per stream; y: n_panels * VW
// rows per stream) through the kernel's int8 products, in the register blocks
// of streams that generation uses: the exact integer sums, as floats (exact
// below 2^24).
int wn_int8_matvec(const int8_t* W, int n_panels, int cols, int n_streams, const uint8_t* xq,
                   float* y);
double wn_barrier_bench(int64_t n);
// Read bandwidth (GB/s, all threads together) of n_threads threads each
// streaming its own buffer of ``bytes`` ``rounds`` times: the ceiling the
// kernel's weight reads meet in L2 (a buffer under its size) or L3.
double wn_read_bench(int64_t bytes, int n_threads, int rounds);
int wn_profile(uint64_t* out);
int wn_run(const WnModel* m, const WnCall* c);
// 0 on success; else the shapes are not the kernel's (see stack_check).
int wn_stack_forward(const WnStack* s);
int wn_stack_backward(const WnStack* s);

}  // extern "C"
