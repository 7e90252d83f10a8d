"""The browser tool's web server: Starlette routes on uvicorn.

API (errors are JSON {"error": message} with a 4xx status the page shows):
  GET  /                     the page
  GET  /api/info             {"model", "coltran", "limits": {...}} (names, no paths)
  POST /api/session          body: the image file (PNG, JPEG, WebP, BMP, TIFF,
                             GIF or PNM; sniffed, not trusted from Content-Type) ->
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

A local tool, not a multi-user service; requests are guarded as such:
  * Who may ask: the Host header must name this server (DNS rebinding); a
    request whose Origin is not the page's own gets 403 (other web pages);
    with a token (--token, or generated for a non-loopback --host) every API
    request must carry it (`Authorization: Bearer TOKEN`; the page takes it
    from the printed URL's #token=...).
  * Bodies: JSON endpoints take only application/json, each capped by what a
    valid request can be (JSON_LIMITS) and parsed in a worker thread; an
    upload is capped at --max_upload_mb; a larger body is a 413 before it is
    read, whatever its headers say; Content-Length with Transfer-Encoding is
    refused (400) and the connection closed.
  * Time: deadlines that trickling bytes cannot reset: the request head within
    `idle_timeout` of the connection (or of the previous reply), the body
    within `idle_timeout` plus its size at `min_rate` (408), a reply read
    within `idle_timeout` plus its size at `min_rate` (the connection is cut).
  * Slots (fairness): at most `max_connections` connections. When all are
    taken, a new one frees a slot by closing a connection that waits on its
    client: idle or still sending its request head first, then one that has
    fallen behind `min_rate` sending its body or reading its reply, then one
    whose body began under 0.1 s ago (its pace not yet known), and only then
    one under a second old (or a second past its last reply), whose request
    head is likely on its way; it is taken from the address holding the
    most connections, the longest waiting first. Connections the server is
    working for are never closed; each address may have at most half of
    `max_connections` requests queued or running (503 beyond).
  * Work: uploads decode one at a time, ColTran suggestions run in a queue of
    their own, so neither delays a colorize.
  * Headers: nosniff, a CSP allowing only the page's own script and no
    framing, no-store on API answers; 405s name the allowed methods.
"""

import asyncio
import base64
import functools
import hashlib
import ipaddress
import os
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus

import anyio
import h11
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from coltran_tf.app.api import MAX_HINTS, ApiError, App, excerpt, parse_json

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# The largest body a valid request to each JSON endpoint can have: a hint with
# float coordinates is under 100 bytes, everything else is a few fields.
JSON_LIMITS = {"colorize": 1024 + 128 * MAX_HINTS, "original": 1024, "gamut": 1024,
               "suggest": 1024, "likely": 1024}
COLTRAN_ENDPOINTS = ("suggest", "likely")
MIN_RATE = 64 * 1024  # bytes/s a client must keep up sending a body or reading a reply
GRACE = 0.1           # seconds a body or reply has before it can fall behind MIN_RATE
HEAD_GRACE = 1.0      # seconds a new connection's head has before it counts as idle


def _error(status: int, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


class _GuardedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with deadlines that trickling bytes cannot
    reset and the slot policy of the module docstring. A watchdog per
    connection checks, a few times a second, that the client keeps up:

      head:  the request head (or the next one on a kept-alive connection)
             arrives within `idle_timeout` of the connection or the last reply;
      reply: a reply leaves the write buffer within `idle_timeout` plus its
             size at `min_rate` (a client that stops reading is cut off, and
             its buffer freed, not kept until it reads).

    The body's deadline is the endpoint's (`_Routes._body`: it answers 408).
    Set on a subclass per server (see `_protocol_class`): idle_timeout,
    min_rate, max_connections.
    """

    idle_timeout = 30.0
    min_rate = MIN_RATE
    max_connections = 64

    def connection_made(self, transport):
        super().connection_made(transport)
        now = time.monotonic()
        self._head_since = now        # waiting for a request head since
        self._reply_since = None      # write buffer non-empty since
        self._reply_size = 0          # ... holding this many bytes then
        self._cycle_seen, self._cycle_since, self._body_bytes = None, now, 0
        self._make_room(now)
        self._tick()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self._running():  # a request head may be complete with this data
            self._make_room(now)
            self._admit()
        elif self.cycle.more_body:
            self._body_bytes += len(data)
        super().data_received(data)
        self._note_cycle(now)

    def on_response_complete(self) -> None:
        now = time.monotonic()
        self._head_since = now
        self._admit()  # a pipelined head may be answered next
        super().on_response_complete()
        self._note_cycle(now)

    def _admit(self) -> None:
        """Decides uvicorn's 503 for a head completed next: served when the live
        connections fit the cap, refused otherwise. uvicorn's own count would
        include connections closed to make room and requests still winding down
        on them until a later turn of the loop, and refuse the head that took
        the freed slot."""
        self.limit_concurrency = None if len(self._live()) <= self.max_connections else 0

    def _live(self) -> list:
        """This server's connections that are not closing."""
        return [c for c in self.connections if isinstance(c, _GuardedProtocol)
                and not c.transport.is_closing()]

    def _note_cycle(self, now: float) -> None:
        """Starts the body's clock when a request head has arrived."""
        if self.cycle is not None and self.cycle is not self._cycle_seen:
            self._cycle_seen, self._cycle_since, self._body_bytes = self.cycle, now, 0

    def _running(self) -> bool:
        """A request whose head has arrived and whose reply is not yet written."""
        return self.cycle is not None and not self.cycle.response_complete

    def _waiting_since(self, now: float) -> tuple[int, float] | None:
        """(rank, since) when this connection waits on its client: rank 0 for a
        head that has not come, 1 for a body or reply behind min_rate, 2 for a
        body within GRACE of its head (its pace not yet known), 3 for a head
        still within HEAD_GRACE of the connection or the last reply; None when
        the server works for it or the client keeps pace."""
        if self.transport.is_closing() and not self.transport.get_write_buffer_size():
            return None
        if self._reply_since is not None:
            elapsed = now - self._reply_since
            sent = self._reply_size - self.transport.get_write_buffer_size()
            if elapsed > GRACE and sent < elapsed * self.min_rate:
                return 1, self._reply_since
            return None
        if not self._running():
            # A head a moment old is on its way (a user's request that just took a
            # freed slot): closed last, or the slot goes back to the tricklers.
            return (0 if now - self._head_since > HEAD_GRACE else 3), self._head_since
        cycle = self.cycle
        if not cycle.more_body or cycle.body:
            return None  # the server's turn: the body is in
        elapsed = now - self._cycle_since
        if elapsed <= GRACE:
            # Before the head on its way: clients that reconnect as soon as they are
            # cut would otherwise keep every slot within its grace.
            return 2, self._cycle_since
        if self._body_bytes < elapsed * self.min_rate:
            return 1, self._cycle_since
        return None

    def _make_room(self, now: float) -> None:
        """Over the connection cap: closes one connection that waits on its
        client, from the address holding the most connections, longest first."""
        live = self._live()
        if len(live) <= self.max_connections:
            return
        per_address = {}
        for connection in live:
            address = (connection.client or ("",))[0]
            per_address[address] = per_address.get(address, 0) + 1
        candidates = []
        for connection in live:
            if connection is self:
                continue
            waiting = connection._waiting_since(now)
            if waiting is not None:
                address = (connection.client or ("",))[0]
                candidates.append((-per_address[address], waiting[0], waiting[1], id(connection),
                                   connection))
        if candidates:
            min(candidates)[-1].transport.abort()

    def _tick(self) -> None:
        if self.transport.is_closing() and not self.transport.get_write_buffer_size():
            return  # closed, or closing with nothing left to send
        now = time.monotonic()
        buffered = self.transport.get_write_buffer_size()
        if buffered and self._reply_since is None:
            self._reply_since, self._reply_size = now, buffered
        elif not buffered:
            self._reply_since = None
        if self._reply_since is not None:
            deadline = self._reply_since + self.idle_timeout + self._reply_size / self.min_rate
            if now > deadline:
                self.transport.abort()  # a client that does not read: free its buffer now
                return
        elif not self._running() and now > self._head_since + self.idle_timeout:
            if not self.transport.is_closing():
                try:
                    self.conn.send(h11.ConnectionClosed())
                except h11.LocalProtocolError:
                    pass
                self.transport.close()
            return
        self.loop.call_later(min(0.25, self.idle_timeout / 4), self._tick)


def _protocol_class(idle_timeout: float, min_rate: float, max_connections: int):
    return type("GuardedProtocol", (_GuardedProtocol,),
                {"idle_timeout": idle_timeout, "min_rate": min_rate,
                 "max_connections": max_connections})


def _page_and_policy() -> tuple[bytes, str]:
    """The page and its Content-Security-Policy: only the page's own inline
    script (by hash), no framing, requests to this server only."""
    with open(os.path.join(STATIC_DIR, "index.html"), "rb") as f:
        page = f.read()
    scripts = re.findall(rb"<script>(.*?)</script>", page, re.S)
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
                      for s in scripts)
    policy = ("default-src 'none'; script-src " + (hashes or "'none'") + "; style-src "
              "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    return page, policy


class _RequestGuard:
    """Headers on every reply (nosniff, the CSP, no framing); 400 and close for a
    request with both Content-Length and Transfer-Encoding (request smuggling);
    403 for another web page's Origin; 401 for an API request without the
    token (when there is one)."""

    def __init__(self, app, policy: str, token: str | None):
        self.app, self.token = app, token
        self.headers = [(b"x-content-type-options", b"nosniff"),
                        (b"x-frame-options", b"DENY"),
                        (b"content-security-policy", policy.encode()),
                        (b"referrer-policy", b"no-referrer")]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope) -> Response | None:
        headers = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        if b"content-length" in headers and b"transfer-encoding" in headers:
            return _error(HTTPStatus.BAD_REQUEST, "A request may not have both Content-Length "
                          "and Transfer-Encoding.", {"Connection": "close"})
        origin, host = headers.get(b"origin"), headers.get(b"host", b"")
        if origin is not None and origin != b"http://" + host:
            return _error(HTTPStatus.FORBIDDEN, "Requests from other web pages are refused "
                          "(Origin " + excerpt(origin.decode("latin-1")) + ").")
        if self.token is not None and scope["path"].startswith("/api/"):
            given = headers.get(b"authorization", b"")
            expected = b"Bearer " + self.token.encode()
            if not secrets.compare_digest(given, expected):
                return _error(HTTPStatus.UNAUTHORIZED, "This server needs its token: open the "
                              "URL it printed (with #token=...).",
                              {"WWW-Authenticate": "Bearer"})
        return None


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

    def __init__(self, app: App, idle_timeout: float, workers: int, min_rate: float,
                 per_address: int, page: bytes):
        self.app, self.idle_timeout, self.min_rate = app, idle_timeout, min_rate
        self.limiter = anyio.CapacityLimiter(workers)  # colorize, gamut, original
        self.uploads = anyio.CapacityLimiter(1)        # decodes: one at a time (memory)
        self.coltran = anyio.CapacityLimiter(1)        # suggestions: a queue of their own
        self.per_address, self.in_progress = per_address, {}
        self.page = page

    async def _body(self, request: Request, limit: int, reserve: bool = False) -> bytes:
        """The body, at most `limit` bytes whatever the headers say (a larger one
        is read on up to 4x the limit, so that the client sees the 413; beyond
        that, or declared so, it is refused unread). The whole body must arrive
        within idle_timeout plus its size at min_rate (408), a deadline that
        trickled bytes cannot reset. With `reserve`, its bytes are reserved in
        the memory budget as they arrive (503 when the budget has no room; the
        caller releases `request.state.reserved`)."""
        too_large = ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"The request is larger than {_size(limit)}, the most this "
                             "endpoint takes.")
        length = request.headers.get("content-length")
        if length is not None and int(length) > 4 * limit:  # h11 checked it is a number
            raise too_large  # refused unread; the connection is closed after the reply
        chunks, size, start = [], 0, time.monotonic()
        request.state.reserved = 0
        while True:
            remaining = start + self.idle_timeout + size / self.min_rate - time.monotonic()
            try:
                message = await asyncio.wait_for(request.receive(), max(remaining, 0.001))
            except TimeoutError:
                raise ApiError(HTTPStatus.REQUEST_TIMEOUT, "The request body arrived too "
                               "slowly.") from None
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > 4 * limit:
                raise too_large
            if size <= limit:
                if reserve and chunk:
                    if not self.app.sessions.reserve(len(chunk)):
                        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "Other uploads are "
                                       "using the server's memory budget; try again in a "
                                       "moment.")
                    request.state.reserved += len(chunk)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if size > limit:
            raise too_large
        return b"".join(chunks)

    async def _run(self, request: Request, limiter, function, *args):
        """function(*args) in a worker thread, within `limiter`, at most
        `per_address` at a time queued or running for one client address."""
        address = request.client.host if request.client else ""
        if self.in_progress.get(address, 0) >= self.per_address:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"{self.per_address} requests from "
                           "your address are in progress, the most one address may have; "
                           "try again when they are answered.")
        self.in_progress[address] = self.in_progress.get(address, 0) + 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=limiter)
        finally:
            self.in_progress[address] -= 1
            if not self.in_progress[address]:
                del self.in_progress[address]

    async def page_(self, request: Request) -> Response:
        return Response(self.page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    async def info(self, request: Request) -> Response:
        return JSONResponse(self.app.info(), headers={"Cache-Control": "no-store"})

    async def session(self, request: Request) -> Response:
        try:
            body = await self._body(request, self.app.max_upload_bytes, reserve=True)
            return JSONResponse(await self._run(request, self.uploads, self.app.open_image,
                                                body), headers={"Cache-Control": "no-store"})
        finally:
            self.app.sessions.release(getattr(request.state, "reserved", 0))

    async def json_endpoint(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in JSON_LIMITS:
            raise ApiError(HTTPStatus.NOT_FOUND, f"No such endpoint: /api/{excerpt(name)}")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Send the request as "
                           "application/json.")
        body = await self._body(request, JSON_LIMITS[name])
        handler = getattr(self.app, name)
        limiter = self.coltran if name in COLTRAN_ENDPOINTS else self.limiter
        answer = await self._run(request, limiter, lambda: handler(parse_json(body)))
        if isinstance(answer, dict):
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})
        body, media_type = answer
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})


def _size(limit: int) -> str:
    return f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit // 1024} KB"


async def _api_error(request: Request, error: ApiError) -> Response:
    close = error.status in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.REQUEST_TIMEOUT)
    return _error(error.status, error.message, {"Connection": "close"} if close else None)


async def _http_error(request: Request, error: HTTPException) -> Response:
    return _error(error.status_code, error.detail if error.status_code != 404
                  else "No such page.", error.headers)  # 405: Allow


async def _client_gone(request: Request, error: ClientDisconnect) -> Response:
    return _error(HTTPStatus.BAD_REQUEST, "The client went away.")


def allowed_hosts(host: str, extra=()) -> list[str]:
    """The names a request's Host header may use: this machine's loopback names,
    the listening address and any `extra` names (e.g. a LAN name)."""
    listening = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return sorted({*LOCAL_HOSTS, listening, *extra})


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_for(host: str, token: str | None) -> str | None:
    """The token a server on `host` requires: `token`, or for an address other
    than this machine's loopback a random one, with a warning on stderr."""
    if is_loopback(host):
        return token
    print(f"Warning: --host={host} is not this machine only: anyone who can reach the port "
          "can use the tool (upload photos, use the CPU). Every API request needs the token "
          "in the URL below; share it only with people you trust.", file=sys.stderr)
    return token or secrets.token_urlsafe(18)


def build_asgi(app: App, hosts, idle_timeout: float = 30.0, workers: int = 4, *,
               token: str | None = None, min_rate: float = MIN_RATE,
               max_connections: int = 64) -> Starlette:
    """The Starlette application serving `app`."""
    page, policy = _page_and_policy()
    routes = _Routes(app, idle_timeout, workers, min_rate, max(1, max_connections // 2), page)
    return Starlette(
        routes=[Route("/", routes.page_), Route("/index.html", routes.page_),
                Route("/api/info", routes.info),
                Route("/api/session", _guarded(routes.session), methods=["POST"]),
                Route("/api/{name}", _guarded(routes.json_endpoint), methods=["POST"])],
        middleware=[Middleware(_RequestGuard, policy=policy, token=token),
                    Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                            ClientDisconnect: _client_gone})


class AppServer:
    """The app on uvicorn, bound at construction (port 0: a free one, see `url`).

    serve_forever() blocks (the command); start()/stop() run it in a thread
    (tests, benchmarks). `token`: required on every API request (None: none).
    """

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, *,
                 extra_hosts=(), idle_timeout: float = 30.0, max_connections: int = 64,
                 workers: int = 4, token: str | None = None, min_rate: float = MIN_RATE):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host.strip("[]"), port))
        self.socket.listen(128)  # connections queue until uvicorn accepts them
        self.app, self.host, self.port = app, host, self.socket.getsockname()[1]
        self.token = token
        config = uvicorn.Config(
            build_asgi(app, allowed_hosts(host, extra_hosts), idle_timeout, workers,
                       token=token, min_rate=min_rate, max_connections=max_connections),
            http=_protocol_class(idle_timeout, min_rate, max_connections),
            timeout_keep_alive=idle_timeout,  # the cap: _GuardedProtocol._admit
            lifespan="off", access_log=False, log_level="warning", server_header=False)
        self.server = uvicorn.Server(config)
        self._thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") \
            else self.host
        return f"http://{host}:{self.port}"

    @property
    def page_url(self) -> str:
        """The page's address, with the token when there is one."""
        return f"{self.url}/" + (f"#token={self.token}" if self.token else "")

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
