"""A small web shop written three times (Flask, Django, FastAPI) by three authors, in a real
git repository, and the real servers (gunicorn, uvicorn) that serve it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Optional

from support.gitrepo import ALICE, BOB, CAROL, GitRepo, init_repo

PRICING = '''\
def unit_price(quantity):
    return 1200 // quantity
'''
PRICING_BOB = PRICING + '''

def discount(quantity):
    return 100 - 300 // quantity
'''
PRICING_CAROL = PRICING_BOB + '''

def shipping(quantity):
    return 500 % quantity
'''

# Each app: POST /order/<shop> (form: qty) fails in pricing (qty=0), unhandled;
# POST /reserve (JSON: count) raises OutOfStock, which the app handles with record_error;
# GET /missing answers 404. Nothing a request carries is kept in a local of a view.
FLASK_APP = '''\
import logging

from flask import Flask, abort, request

import flawless.client
from flawless.client.flask import Flawless
from flawless.client.hooks import FlawlessHandler
from webshop import pricing

app = Flask(__name__)
Flawless(app)
app.logger.addHandler(FlawlessHandler())


class OutOfStock(Exception):
    pass


def reserve(count):
    raise OutOfStock("only 2 left, %d wanted" % count)


@app.post("/order/<int:shop>")
def order(shop):
    flawless.client.set_tag("shop", str(shop))
    return {"price": pricing.unit_price(int(request.form["qty"]))}


@app.post("/reserve")
def reserve_items():
    return {"reserved": reserve(int(request.get_json()["count"]))}


@app.get("/missing")
def missing():
    abort(404)


@app.errorhandler(OutOfStock)
def out_of_stock(error):
    flawless.client.record_error(None, (type(error), error, error.__traceback__))
    app.logger.error("out of stock", exc_info=error)  # marked: not reported again
    return {"error": "out of stock"}, 409
'''

DJANGO_APP = '''\
import json
import os
import sys

from django.conf import settings

settings.configure(
    DEBUG=False, SECRET_KEY="not-a-secret-" + "x" * 40, ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["flawless.client.django"],
    MIDDLEWARE=["flawless.client.django.middleware.FlawlessMiddleware"],
    FLAWLESS={"hostports": [os.environ["SHOP_FLAWLESS_HOSTPORT"]],
              "key": os.environ["SHOP_FLAWLESS_KEY"]},
    LOGGING={"version": 1, "disable_existing_loggers": False,
             "handlers": {"flawless": {"class": "flawless.client.hooks.FlawlessHandler"}},
             "loggers": {"django.request": {"handlers": ["flawless"], "level": "ERROR"}}},
)

import django  # noqa: E402

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import Http404, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

import flawless.client  # noqa: E402
from webshop import pricing  # noqa: E402


class OutOfStock(Exception):
    pass


def reserve(count):
    raise OutOfStock("only 2 left, %d wanted" % count)


def order(request, shop):
    flawless.client.set_tag("shop", str(shop))
    return JsonResponse({"price": pricing.discount(int(request.POST["qty"]))})


def reserve_items(request):
    try:
        return JsonResponse({"reserved": reserve(int(json.loads(request.body)["count"]))})
    except OutOfStock:
        flawless.client.record_error(None, sys.exc_info())
        return JsonResponse({"error": "out of stock"}, status=409)


def missing(request):
    raise Http404("no such page")


urlpatterns = [path("order/<int:shop>", order), path("reserve", reserve_items),
               path("missing", missing)]
application = get_wsgi_application()
'''

ASGI_APP = '''\
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

import flawless.client
from flawless.client.asgi import FlawlessASGIMiddleware
from webshop import pricing

app = FastAPI()
app.add_middleware(FlawlessASGIMiddleware)


class OutOfStock(Exception):
    pass


def reserve(count):
    raise OutOfStock("only 2 left, %d wanted" % count)


@app.post("/order/{shop}")
async def order(shop: int, request: Request):
    flawless.client.set_tag("shop", str(shop))
    return {"price": pricing.shipping(int((await request.form())["qty"]))}


@app.post("/reserve")
async def reserve_items(request: Request):
    return {"reserved": reserve(int((await request.json())["count"]))}


@app.get("/missing")
async def missing():
    raise HTTPException(404)


@app.exception_handler(OutOfStock)
async def out_of_stock(request, error):
    flawless.client.record_error(None, (type(error), error, error.__traceback__))
    return JSONResponse({"error": "out of stock"}, status_code=409)
'''


def webshop_repo(path: Path) -> GitRepo:
    """Alice wrote unit_price and the Flask app, Bob discount and the Django app, Carol
    shipping and the FastAPI app."""
    repo = init_repo(path)
    repo.commit(ALICE, {"webshop/__init__.py": "", "webshop/pricing.py": PRICING,
                        "webshop/flask_app.py": FLASK_APP}, "Flask shop",
                date="2026-11-02T10:00:00+00:00")
    repo.commit(BOB, {"webshop/pricing.py": PRICING_BOB, "webshop/django_app.py": DJANGO_APP},
                "Django shop", date="2026-11-03T10:00:00+00:00")
    repo.commit(CAROL, {"webshop/pricing.py": PRICING_CAROL,
                        "webshop/asgi_app.py": ASGI_APP}, "FastAPI shop",
                date="2026-11-04T10:00:00+00:00")
    return repo


BIN = Path(sys.executable).parent
SERVERS = {
    "flask": ([str(BIN / "gunicorn"), "--workers", "1", "--bind", "127.0.0.1:0",
               "webshop.flask_app:app"], r"Listening at: http://127\.0\.0\.1:(\d+)"),
    "django": ([str(BIN / "gunicorn"), "--workers", "1", "--bind", "127.0.0.1:0",
                "webshop.django_app:application"], r"Listening at: http://127\.0\.0\.1:(\d+)"),
    "fastapi": ([sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "0",
                 "webshop.asgi_app:app"], r"running on http://127\.0\.0\.1:(\d+)"),
}


class AppServer:
    """gunicorn or uvicorn serving one of the apps from the repository's checkout."""

    def __init__(self, framework: str, repo: Path, log_path: Path,
                 env: Mapping[str, str]) -> None:
        command, self._listening = SERVERS[framework]
        self.log_path = log_path
        log = open(log_path, "wb")
        self.process = subprocess.Popen(command, cwd=repo, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **env, "PYTHONPATH": str(repo)})
        log.close()
        self.port = 0

    def start(self, timeout: float = 30.0) -> "AppServer":
        """Wait until it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(self._listening, self.log())
            if found:
                self.port = int(found.group(1))
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the app server did not start:\n" + self.log())

    def log(self) -> str:
        """What it printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> Optional[int]:
        """SIGTERM, then wait (SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(10)
