// A host process with its own full libprotobuf (descriptors registered in the
// global pool, under the agent's own OTLP names) and its own shared libuv,
// loading libotelagent. Both the host's libraries and the agent must work.
// Prints "host ok exported=N" on success; exits non-zero naming a failure.
#include <dlfcn.h>
#include <google/protobuf/descriptor.h>
#include <otelagent/otelagent.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "opentelemetry/proto/trace/v1/trace.pb.h"

namespace {

int fail(const char *what) {
  std::printf("host FAILED: %s\n", what);
  return 1;
}

bool host_protobuf_works() {
  const auto *d = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
      "opentelemetry.proto.trace.v1.Span");
  if (d == nullptr || d->FindFieldByName("host_only_field") == nullptr) return false;
  opentelemetry::proto::trace::v1::Span s, back;
  s.set_host_only_field("mine");
  s.set_host_counter(41);
  return back.ParseFromString(s.SerializeAsString()) && back.host_only_field() == "mine" &&
         back.host_counter() == 41;
}

bool host_uv_works() {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return false;
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(&loop, &t);
  t.data = &fired;
  uv_timer_start(
      &t, [](uv_timer_t *h) { ++*static_cast<int *>(h->data); }, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t *>(&t), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 && fired == 1;
}

// The shared object a symbol resolves to, as the dynamic linker sees it.
std::string provider(const char *symbol) {
  Dl_info info{};
  void *p = dlsym(RTLD_DEFAULT, symbol);
  if (p == nullptr || dladdr(p, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

}  // namespace

int main() {
  if (!host_protobuf_works()) return fail("host protobuf before the agent");
  if (!host_uv_works()) return fail("host libuv before the agent");
  if (otelagent_start(nullptr) != OTELAGENT_OK) return fail("otelagent_start");
  for (int i = 0; i < 10; ++i) {
    otelagent_span *s = nullptr;
    otelagent_span_start("host.span", 9, nullptr, &s);
    otelagent_span_set_int64(s, "i", 1, i);
    otelagent_span_end(s, 0);
  }
  if (otelagent_flush(20000) != OTELAGENT_OK) return fail("flush");
  // The agent's exporter thread ran its libuv loop; the host's still work.
  if (!host_protobuf_works()) return fail("host protobuf after the agent");
  if (!host_uv_works()) return fail("host libuv after the agent");
  if (provider("uv_loop_init").find("libuv.so") == std::string::npos)
    return fail("uv_loop_init does not resolve to the host's libuv.so");
  if (provider("ZSTD_compress").find("libotelagent") != std::string::npos)
    return fail("the agent exports zstd");
  otelagent_stats st{};
  st.struct_size = sizeof st;
  otelagent_stats_get(&st);
  otelagent_shutdown(5000);
  std::printf("host ok exported=%llu\n", static_cast<unsigned long long>(st.spans_exported));
  return st.spans_exported == 10 ? 0 : fail("not every span was exported");
}
