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


_sdk_installed = []


def _sdk():
    if _sdk_installed:
        return
    _sdk_installed.append(True)
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


def _bare_telemetry(app):
    """FastAPI's own telemetry makes spans once any OpenTelemetry provider is
    set (the sdk mode sets one): a bare app must not."""
    native = getattr(app, "_telemetry", None)
    if isinstance(native, dict):
        native["tracing"] = False


def make_fastapi(mode=None):
    from fastapi import FastAPI
    mode = mode or MODE
    app = FastAPI()

    @app.get("/api/users/{user_id}")
    async def user(user_id: int):
        return {"user_id": user_id, "name": "ada"}

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    if mode == "otelagent":
        import otelagent.integrations.fastapi as of
        of.instrument_app(app)
    elif mode == "sdk":
        _sdk()
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        FastAPIInstrumentor.instrument_app(app)
    else:
        _bare_telemetry(app)
    return app


def make_flask(mode=None):
    from flask import Flask, jsonify
    mode = mode or MODE
    app = Flask(__name__)

    @app.get("/api/users/<int:user_id>")
    def user(user_id):
        return jsonify({"user_id": user_id, "name": "ada"})

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    if mode == "otelagent":
        import otelagent.integrations.flask as ofl
        ofl.instrument_app(app)
    elif mode == "sdk":
        _sdk()
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        FlaskInstrumentor().instrument_app(app)
    return app


if os.environ.get("OTELAGENT_BENCH_APP") == "fastapi":
    fastapi_app = make_fastapi()
elif os.environ.get("OTELAGENT_BENCH_APP") == "flask":
    flask_app = make_flask()
