#include "support/alloc_hooks.h"

#include <cstddef>
#include <cstdlib>
#include <new>

extern "C" {
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);
}

namespace {
thread_local bool t_counting = false;
thread_local otelagent_test::AllocCounts t_counts;

void count_malloc() {
  if (t_counting) ++t_counts.mallocs;
}
void *counted_new(size_t n, size_t align = 0) {
  if (t_counting) ++t_counts.news;
  bool was = t_counting;
  t_counting = false;  // count the new once, not also its malloc
  void *p = align ? __libc_memalign(align, n ? n : 1) : __libc_malloc(n ? n : 1);
  t_counting = was;
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

namespace otelagent_test {
void alloc_count_begin() {
  t_counts = {};
  t_counting = true;
}
AllocCounts alloc_count_end() {
  t_counting = false;
  return t_counts;
}
}  // namespace otelagent_test

extern "C" {
void *malloc(size_t n) {
  count_malloc();
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  count_malloc();
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  count_malloc();
  return __libc_realloc(p, n);
}
void *memalign(size_t a, size_t n) {
  count_malloc();
  return __libc_memalign(a, n);
}
void *aligned_alloc(size_t a, size_t n) {
  count_malloc();
  return __libc_memalign(a, n);
}
int posix_memalign(void **out, size_t a, size_t n) {
  count_malloc();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;
}
void free(void *p) {
  __libc_free(p);
}
}

void *operator new(size_t n) {
  return counted_new(n);
}
void *operator new[](size_t n) {
  return counted_new(n);
}
void *operator new(size_t n, const std::nothrow_t &) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void *operator new[](size_t n, const std::nothrow_t &) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void *operator new(size_t n, std::align_val_t a) {
  return counted_new(n, static_cast<size_t>(a));
}
void *operator new[](size_t n, std::align_val_t a) {
  return counted_new(n, static_cast<size_t>(a));
}
void operator delete(void *p) noexcept {
  __libc_free(p);
}
void operator delete[](void *p) noexcept {
  __libc_free(p);
}
void operator delete(void *p, size_t) noexcept {
  __libc_free(p);
}
void operator delete[](void *p, size_t) noexcept {
  __libc_free(p);
}
void operator delete(void *p, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete[](void *p, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete(void *p, size_t, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete[](void *p, size_t, std::align_val_t) noexcept {
  __libc_free(p);
}
