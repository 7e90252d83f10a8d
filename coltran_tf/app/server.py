"""The browser tool's web server: Starlette routes on uvicorn.

API (errors are JSON {"error": message} with a 4xx status the page shows):
  GET  /                     the page
  GET  /api/info             {"model": ..., "limits": {...}}
  POST /api/session          body: the image file (any type the server can decode;
                             sniffed, not trusted from Content-Type) ->
                             {"session", "width", "height"}
  POST /api/original         JSON {"session"} -> the photo as JPEG (for formats a
                             browser cannot show itself, e.g. TIFF, PNM)
  POST /api/colorize         JSON {"session", "hints": [{"y", "x", "rgb"|"ab"}],
                             "format": "jpeg"|"png"} -> the colorized image at the
                             photo's full resolution (jpeg: fast preview, png: download)
  POST /api/gamut            JSON {"session", "y", "x"} -> {"lightness", "ab_max",
                             "image"}: the sRGB colours of that pixel's lightness
                             as an ab plane (PNG data URL, out of gamut transparent)
  POST /api/suggest          JSON {"session", "count", "seed"} -> {"suggestions":
                             [{"image", "hints"}]}: ColTran's colourings and the
                             hints that start from each
  POST /api/likely           JSON {"session", "y", "x", "count"} -> {"colors":
                             [{"rgb", "probability"}]}: ColTran's most likely
                             colours at that pixel

A local tool, not a multi-user service. Requests are guarded as such: the Host
header must name this server (DNS rebinding), a request whose Origin is not
the page's own is refused with 403 (other web pages), JSON endpoints take
only application/json (no preflight-free text/plain posts), every body is
capped at the upload limit whatever its headers say (413), a body that stalls
is cut off (408), idle connections are closed after `idle_timeout` seconds
and concurrent connections are capped (503 beyond).
"""

import asyncio
import functools
import os
import socket
import sys
import threading
import traceback
from http import HTTPStatus

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from coltran_tf.app.api import ApiError, App, excerpt, parse_json

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
JSON_ENDPOINTS = ("original", "colorize", "gamut", "suggest", "likely")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status,
                        headers={"Cache-Control": "no-store"})


class _IdleClosingProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that also closes a connection which has not
    sent a whole request head within the keep-alive timeout (uvicorn arms that
    timer only between requests, so a client that connects and sends nothing,
    or a header a byte at a time, would hold its connection for ever)."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is None or self.cycle.response_complete:  # no request running
            self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)


class _OriginCheck:
    """403 for a request whose Origin header is not this page's own origin."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            origin = headers.get(b"origin")
            host = headers.get(b"host", b"")
            if origin is not None and origin != b"http://" + host:
                response = _error(HTTPStatus.FORBIDDEN, "Requests from other web pages are "
                                  "refused (Origin " + excerpt(origin.decode("latin-1")) + ").")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _guarded(endpoint):
    """Unexpected failures become a JSON 500 whose message and log line quote no
    input (the log gets the stack and a short excerpt of the exception)."""
    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (ApiError, HTTPException, ClientDisconnect):
            raise
        except Exception as error:  # noqa: BLE001
            print(f"Server error on {request.url.path}: {type(error).__name__}: "
                  f"{excerpt(str(error))}", file=sys.stderr)
            traceback.print_tb(error.__traceback__, file=sys.stderr)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"The server failed "
                          f"({type(error).__name__}); see its log.")
    return wrapper


class _Routes:
    """The endpoints, bound to one App."""

    def __init__(self, app: App, idle_timeout: float, workers: int):
        self.app, self.idle_timeout = app, idle_timeout
        self.limiter = anyio.CapacityLimiter(workers)  # CPU work at a time (memory, cores)
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as f:
            self.page = f.read()

    async def _body(self, request: Request) -> bytes:
        """The body, at most the upload limit whatever the headers say (a larger
        one is read on up to 4x the limit, so the client sees the reply, then
        refused; a stalled one is cut off)."""
        limit = self.app.max_upload_bytes
        too_large = ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"The request is larger than {limit // 2**20} MB.")
        length = request.headers.get("content-length")
        if length is not None and int(length) > 4 * limit:  # h11 checked it is a number
            raise too_large  # refused unread; the connection is closed after the reply
        chunks, size = [], 0
        try:
            while True:
                message = await asyncio.wait_for(request.receive(), self.idle_timeout)
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > 4 * limit:
                    raise too_large
                if size <= limit:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except TimeoutError:
            raise ApiError(HTTPStatus.REQUEST_TIMEOUT, "The request body stopped arriving."
                           ) from None
        if size > limit:
            raise too_large
        return b"".join(chunks)

    async def _run(self, function, *args):
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)


    async def page_(self, request: Request) -> Response:
        return Response(self.page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    async def info(self, request: Request) -> Response:
        return JSONResponse(self.app.info(), headers={"Cache-Control": "no-store"})

    async def session(self, request: Request) -> Response:
        body = await self._body(request)
        return JSONResponse(await self._run(self.app.open_image, body))

    async def json_endpoint(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in JSON_ENDPOINTS:
            raise ApiError(HTTPStatus.NOT_FOUND, f"No such endpoint: /api/{excerpt(name)}")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Send the request as "
                           "application/json.")
        payload = parse_json(await self._body(request))
        answer = await self._run(getattr(self.app, name), payload)
        if isinstance(answer, dict):
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})
        body, media_type = answer
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})


async def _api_error(request: Request, error: ApiError) -> Response:
    response = _error(error.status, error.message)
    if error.status in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.REQUEST_TIMEOUT):
        response.headers["Connection"] = "close"
    return response


async def _http_error(request: Request, error: HTTPException) -> Response:
    return _error(error.status_code, error.detail if error.status_code != 404
                  else "No such page.")


async def _client_gone(request: Request, error: ClientDisconnect) -> Response:
    return _error(HTTPStatus.BAD_REQUEST, "The client went away.")


def allowed_hosts(host: str, extra=()) -> list[str]:
    """The names a request's Host header may use: this machine's loopback names,
    the listening address and any `extra` names (e.g. a LAN name)."""
    listening = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return sorted({*LOCAL_HOSTS, listening, *extra})


def build_asgi(app: App, hosts, idle_timeout: float = 30.0, workers: int = 4) -> Starlette:
    """The Starlette application serving `app`."""
    routes = _Routes(app, idle_timeout, workers)
    return Starlette(
        routes=[Route("/", routes.page_), Route("/index.html", routes.page_),
                Route("/api/info", routes.info),
                Route("/api/session", _guarded(routes.session), methods=["POST"]),
                Route("/api/{name}", _guarded(routes.json_endpoint), methods=["POST"])],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)),
                    Middleware(_OriginCheck)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                            ClientDisconnect: _client_gone})


class AppServer:
    """The app on uvicorn, bound at construction (port 0: a free one, see `url`).

    serve_forever() blocks (the command); start()/stop() run it in a thread
    (tests, benchmarks).
    """

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, *,
                 extra_hosts=(), idle_timeout: float = 30.0, max_connections: int = 64,
                 workers: int = 4):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host.strip("[]"), port))
        self.socket.listen(128)  # connections queue until uvicorn accepts them
        self.app, self.host, self.port = app, host, self.socket.getsockname()[1]
        config = uvicorn.Config(
            build_asgi(app, allowed_hosts(host, extra_hosts), idle_timeout, workers),
            http=_IdleClosingProtocol, timeout_keep_alive=idle_timeout,
            limit_concurrency=max_connections, lifespan="off", access_log=False,
            log_level="warning", server_header=False)
        self.server = uvicorn.Server(config)
        self._thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") \
            else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self) -> "AppServer":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("The app server did not start.")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self.socket.close()
