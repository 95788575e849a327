// Runs the generation kernel on inputs prepared on another machine (the tests
// cross-compile it for aarch64 and run it under qemu-user).
//
//   kernel_driver run   <in> <out>   one wn_run call; <out> gets rc + the blob
//   kernel_driver int8  <in> <out>   wn_int8_matvec; <out> gets rc + y
//   kernel_driver sizes              sizeof(WnModel) sizeof(WnCall) VW int8-path
//
// <in> of "run": the WnModel and WnCall bytes (LP64 layout, as on x86-64), the
// byte offsets of their pointer fields, and one blob holding every array; a
// pointer field holds 1 + the array's offset in the blob (0: null).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wavenet_abi.h"

namespace {
template <typename T>
bool read(FILE* f, T* p, size_t n = 1) { return fread(p, sizeof(T), n, f) == n; }

char* read_blob(FILE* f, int64_t* n) {
  if (!read(f, n)) return nullptr;
  char* blob = static_cast<char*>(aligned_alloc(64, (*n + 63) / 64 * 64 + 64));
  return blob && fread(blob, 1, *n, f) == (size_t)*n ? blob : nullptr;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && !strcmp(argv[1], "sizes")) {
    printf("%zu %zu %d %d\n", sizeof(WnModel), sizeof(WnCall), wn_panel_rows(), wn_int8_path());
    return 0;
  }
  if (argc != 4) return 2;
  FILE* in = fopen(argv[2], "rb");
  FILE* out = fopen(argv[3], "wb");
  if (!in || !out) return 3;
  int32_t rc = 0;
  if (!strcmp(argv[1], "run")) {
    WnModel m;
    WnCall c;
    int64_t n_ptr, n;
    if (!read(in, &m) || !read(in, &c) || !read(in, &n_ptr)) return 4;
    std::vector<int64_t> offs(n_ptr);
    if (!read(in, offs.data(), n_ptr)) return 4;
    char* blob = read_blob(in, &n);
    if (!blob) return 4;
    for (int64_t off : offs) {  // struct-relative: model bytes, then call bytes
      char* field = off < (int64_t)sizeof(m) ? reinterpret_cast<char*>(&m) + off
                                             : reinterpret_cast<char*>(&c) + off - sizeof(m);
      uint64_t v;
      memcpy(&v, field, 8);
      v = v ? reinterpret_cast<uint64_t>(blob) + v - 1 : 0;
      memcpy(field, &v, 8);
    }
    rc = wn_run(&m, &c);
    fwrite(&rc, 4, 1, out);
    fwrite(blob, 1, n, out);
  } else if (!strcmp(argv[1], "int8")) {
    int32_t panels, cols;
    int64_t nw, nx;
    if (!read(in, &panels) || !read(in, &cols)) return 4;
    char* w = read_blob(in, &nw);
    char* x = read_blob(in, &nx);
    if (!w || !x) return 4;
    const int streams = (int)(nx / cols);  // x: cols bytes per stream
    std::vector<float> y((size_t)panels * wn_panel_rows() * streams);
    rc = wn_int8_matvec(reinterpret_cast<int8_t*>(w), panels, cols, streams,
                        reinterpret_cast<uint8_t*>(x), y.data());
    fwrite(&rc, 4, 1, out);
    fwrite(y.data(), sizeof(float), y.size(), out);
  } else {
    return 2;
  }
  return fclose(out) == 0 ? 0 : 5;
}
