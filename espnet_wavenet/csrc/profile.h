// Cycle counters of the two-thread pipeline (built with -DWN_PROFILE only).
#pragma once

#include <atomic>
#include <cstdint>

#include "wavenet_abi.h"

#if defined(WN_PROFILE) && defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace wn {

// TSC cycles per slot (WnProfileSlot) summed over calls, read and reset by wn_profile.
#if defined(WN_PROFILE) && defined(__x86_64__)
static std::atomic<uint64_t> g_prof[WN_P_N];
// Per-thread sums (a shared line would ping-pong between the two cores and
// distort what it measures), added to g_prof when a thread's part ends.
static thread_local uint64_t t_prof[WN_P_N];
struct ProfTimer {
  int slot;
  uint64_t t0 = __rdtsc();
  explicit ProfTimer(int s) : slot(s) {}
  ~ProfTimer() { t_prof[slot] += __rdtsc() - t0; }
};
inline void prof_flush() {
  for (int i = 0; i < WN_P_N; ++i) g_prof[i] += t_prof[i], t_prof[i] = 0;
}
#define WN_PROF(slot) ProfTimer prof_timer_##slot(slot)
#define WN_PROF_FLUSH() prof_flush()
#else
#define WN_PROF(slot)
#define WN_PROF_FLUSH()
#endif

}  // namespace wn
