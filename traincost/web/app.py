"""The web app: the calculator's page and its JSON API, on FastAPI (``pip install 'traincost[web]'``).

``GET /api/predict`` and ``/api/compare`` answer what ``traincost predict --json`` and ``compare --json``
print (:mod:`traincost.web.service`); ``GET /api/gpus`` the catalog of ``traincost gpus --json``;
``GET /api/models`` the names it accepts; ``POST /api/spec`` reads an uploaded spec. A bad input is HTTP
400 ``{"error": one line, "field": the query parameter}``, never a traceback. The page (``/``) and its assets
ship in the package (``static/``): nothing is fetched from elsewhere, it works offline.
"""

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from traincost.errors import TraincostUsageError
from traincost.web.service import (
    DEFAULT_TIME_LIMIT_S,
    MAX_SPEC_BYTES,
    Service,
    WebError,
    spec_from_text,
)

STATIC = Path(__file__).parent / "static"
#: What the page may load: its own files only (no CDN), no framing by other sites.
_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def create_app(time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> Any:
    """The FastAPI application; each prediction answers within ``time_limit_s`` seconds or with an error."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import FileResponse, Response
        from starlette.exceptions import HTTPException as StarletteHTTPException
        from starlette.staticfiles import StaticFiles
    except ImportError as exc:
        raise TraincostUsageError("the web app needs FastAPI and uvicorn: pip install 'traincost[web]' "
                                  f"({exc.name or exc} is missing)") from None
    from traincost.version import __version__

    service = Service(time_limit_s=time_limit_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        threading.Thread(target=_warm, name="traincost-web-warm", daemon=True).start()
        yield
        service.close()

    app = FastAPI(title="traincost", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.service = service

    def json_text(text: str, status: int = 200) -> Response:
        return Response(content=text, status_code=status, media_type="application/json", headers=_HEADERS)

    def error(exc: WebError) -> Response:
        return json_text(json.dumps(exc.to_dict()), exc.status)

    def guarded(make: Any) -> Response:
        try:
            return json_text(make())
        except WebError as exc:
            return error(exc)
        except Exception as exc:  # a bug: one line, never a traceback
            first = (str(exc).splitlines() or [""])[0]
            return error(WebError(500, f"internal error: {type(exc).__name__}: {first}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error(WebError(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> Response:
        return error(WebError(500, f"internal error: {type(exc).__name__}"))

    def query(request: Request) -> dict[str, str]:
        items = list(request.query_params.multi_items())
        names = [k for k, _ in items]
        twice = next((k for k in names if names.count(k) > 1), None)
        if twice is not None:
            raise WebError(400, f"parameter {twice!r} is given more than once", twice)
        return dict(items)

    @app.get("/api/predict")
    def api_predict(request: Request) -> Response:
        return guarded(lambda: service.answer("predict", query(request)))

    @app.get("/api/compare")
    def api_compare(request: Request) -> Response:
        return guarded(lambda: service.answer("compare", query(request)))

    @app.get("/api/gpus")
    def api_gpus() -> Response:
        from traincost.queries import gpu_catalog

        return guarded(lambda: json.dumps(gpu_catalog()))

    @app.get("/api/models")
    def api_models() -> Response:
        from traincost.web.names import model_names

        return guarded(lambda: json.dumps(model_names()))

    @app.post("/api/spec")
    async def api_spec(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_SPEC_BYTES:
                return error(WebError(400, f"the spec is over this server's bound of {MAX_SPEC_BYTES // 1024} KiB",
                                      "spec"))

        def read() -> str:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise WebError(400, "uploaded spec is not a text file (expected a JSON or YAML description)",
                               "spec") from None
            spec = spec_from_text(text)
            return json.dumps({"spec": spec.to_dict(), "label": spec.label, "input_shape": list(spec.sample_shape())})

        return guarded(read)

    @app.get("/")
    def page() -> Response:
        return FileResponse(STATIC / "index.html", headers=_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app


def _warm() -> None:
    """Load torch, the catalog and the names in the background: the first answers come sooner."""
    from traincost.queries import gpu_catalog
    from traincost.web.names import model_names

    gpu_catalog()
    import traincost.api  # noqa: F401
    model_names()


class Background:
    """The app served by uvicorn in a daemon thread on a free loopback port (tests, screenshots, benchmarks)."""

    def __init__(self, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> None:
        import socket

        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(time_limit_s), log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="traincost-web-server", daemon=True)

    def __enter__(self) -> "Background":
        import time

        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
