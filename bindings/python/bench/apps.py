"""The benchmark's services, one FastAPI and one Flask app, set up by the
environment variable OTELAGENT_BENCH_MODE:

  bare       no tracing
  otelagent  otelagent's integrations (exporting OTLP/HTTP to the discard sink)
  sdk        the OpenTelemetry SDK (BatchSpanProcessor, discarding exporter)
             with the contrib FastAPI / Flask instrumentations

The handlers do what a small real handler does: read a path parameter and
return a small JSON document."""

import os

MODE = os.environ.get("OTELAGENT_BENCH_MODE", "bare")


def _sdk():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (BatchSpanProcessor, SpanExporter,
                                                SpanExportResult)

    class Discard(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace.set_tracer_provider(provider)


def make_fastapi():
    from fastapi import FastAPI
    app = FastAPI()

    @app.get("/api/users/{user_id}")
    async def user(user_id: int):
        return {"user_id": user_id, "name": "ada"}

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    if MODE == "otelagent":
        import otelagent.integrations.fastapi as of
        of.instrument_app(app)
    elif MODE == "sdk":
        _sdk()
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        FastAPIInstrumentor.instrument_app(app)
    return app


def make_flask():
    from flask import Flask, jsonify
    app = Flask(__name__)

    @app.get("/api/users/<int:user_id>")
    def user(user_id):
        return jsonify({"user_id": user_id, "name": "ada"})

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    if MODE == "otelagent":
        import otelagent.integrations.flask as ofl
        ofl.instrument_app(app)
    elif MODE == "sdk":
        _sdk()
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        FlaskInstrumentor().instrument_app(app)
    return app


if os.environ.get("OTELAGENT_BENCH_APP") == "fastapi":
    fastapi_app = make_fastapi()
elif os.environ.get("OTELAGENT_BENCH_APP") == "flask":
    flask_app = make_flask()
