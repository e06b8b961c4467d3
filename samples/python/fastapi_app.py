"""Sample FastAPI service traced by otelagent (run under uvicorn):

    uvicorn samples.python.fastapi_app:app

Routes: a nested span tree with an outbound call to the inventory service
(DOWNSTREAM_URL, the Flask sample), a failing route, a streamed response and
a health check that is not traced (OTEL_PYTHON_EXCLUDED_URLS=healthz)."""

import asyncio
import contextlib
import logging
import os

import httpx
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

import otelagent
import otelagent.integrations.fastapi as otelagent_fastapi
from otelagent.integrations import clients
from otelagent.integrations import logging as otelagent_logging

otelagent.start()
otelagent_logging.instrument(set_format=True)
clients.instrument()
log = logging.getLogger("sample.fastapi")



@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    # uvicorn ends on SIGTERM (how ECS stops a task) by raising the signal
    # again once the server has stopped, so no exit handler runs: flush here,
    # or the spans ended since the last export are lost.
    otelagent.shutdown()


app = FastAPI(lifespan=lifespan)
otelagent_fastapi.instrument_app(app)
DOWNSTREAM = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8001")


@app.get("/api/users/{user_id}")
async def get_user(user_id: int):
    with otelagent.start_as_current_span("load-user") as span:
        span.set_attribute("app.user_id", user_id)
        with otelagent.start_as_current_span("db-query") as q:
            q.set_attribute("db.system.name", "sqlite")
            await asyncio.sleep(0.001)
        log.info("loaded user %s", user_id)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{DOWNSTREAM}/inventory/{user_id}?token=s3cret")
    return {"user_id": user_id, "inventory": r.json()}


@app.get("/fail")
async def fail():
    raise RuntimeError("the failing route failed")


@app.get("/stream")
async def stream():
    async def chunks():
        for i in range(3):
            with otelagent.start_as_current_span("chunk") as s:
                s.set_attribute("i", i)
            yield f"chunk {i}\n"
            await asyncio.sleep(0)
    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/healthz")
async def healthz():
    return {"ok": True}
