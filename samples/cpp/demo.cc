// A small service-shaped trace: an HTTP request that reads a cache, queries a
// database on a worker thread and fails one call. Run it with the console
// exporter to see the tree without any collector:
//   OTEL_TRACES_EXPORTER=console ./build/otelagent_demo
#include <otelagent/otelagent.hpp>

#include <cstdio>
#include <thread>

int main() {
  int rc = otelagent_start(nullptr);
  if (rc != OTELAGENT_OK) {
    std::fprintf(stderr, "otelagent_start: %s\n", otelagent_strerror(rc));
    return rc == OTELAGENT_E_DISABLED ? 0 : 1;
  }
  {
    otelagent::SpanOptions server;
    server.kind = OTELAGENT_KIND_SERVER;
    server.scope_name = "demo.http";
    server.scope_version = "1.0";
    otelagent::Span request("GET /orders/{id}", server);
    request.set("http.request.method", "GET")
        .set("url.path", "/orders/42")
        .set("http.response.status_code", 200);
    {
      otelagent::Span cache("cache.get");
      cache.set("cache.hit", false).add_event("miss");
    }
    otelagent_span_context parent = request.context();
    std::thread worker([&parent] {
      otelagent::SpanOptions o;
      o.kind = OTELAGENT_KIND_CLIENT;
      o.parent = &parent;
      otelagent::Span query("SELECT orders", o);
      query.set("db.system", "postgresql").set("db.rows", 1).set("db.duration_ms", 1.25);
    });
    worker.join();
    otelagent::SpanOptions client;
    client.kind = OTELAGENT_KIND_CLIENT;
    otelagent::Span pay("payments.authorize", client);
    pay.record_exception("TimeoutError", "payment provider did not answer in 2 s");
    pay.set_status(OTELAGENT_STATUS_ERROR, "timeout");
  }
  otelagent_flush(2000);
  otelagent_stats st{};
  st.struct_size = sizeof st;
  otelagent_stats_get(&st);
  std::fprintf(stderr, "demo: %llu spans ended, %llu exported to a collector, %llu still queued\n",
               static_cast<unsigned long long>(st.spans_ended),
               static_cast<unsigned long long>(st.spans_exported),
               static_cast<unsigned long long>(st.queue_depth));
  return otelagent_shutdown(3000) == OTELAGENT_OK ? 0 : 1;
}
