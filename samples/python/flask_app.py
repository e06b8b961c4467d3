"""Sample Flask service traced by otelagent (run under gunicorn):

    gunicorn samples.python.flask_app:app

The inventory service the FastAPI sample calls."""

import logging
import os

from flask import Flask, jsonify

import otelagent
import otelagent.integrations.flask as otelagent_flask
from otelagent.integrations import logging as otelagent_logging

# OTELAGENT_SAMPLE_ZERO_CODE=1: no explicit set-up (see fastapi_app.py).
EXPLICIT = os.environ.get("OTELAGENT_SAMPLE_ZERO_CODE") != "1"
if EXPLICIT:
    otelagent.start()
    otelagent_logging.instrument(set_format=True)
log = logging.getLogger("sample.flask")

app = Flask(__name__)
if EXPLICIT:
    otelagent_flask.instrument_app(app)


@app.get("/inventory/<int:item_id>")
def inventory(item_id):
    with otelagent.start_as_current_span("inventory-lookup") as span:
        span.set_attribute("app.item_id", item_id)
        log.info("inventory lookup %s", item_id)
    return jsonify({"item_id": item_id, "count": 7, "pid": os.getpid()})


@app.get("/boom")
def boom():
    raise ValueError("boom")


@app.get("/healthz")
def healthz():
    return "ok"
