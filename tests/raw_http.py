"""Raw HTTP over sockets for the browser tool's tests: where an HTTP client
library would hide the problem (lengths, chunked bodies, stalls, headers)."""

import io
import json
import socket

import numpy as np
from PIL import Image


def _png(size=(64, 48), seed=0) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _exchange(server, data: bytes, wait: float = 10.0) -> bytes:
    """Sends raw bytes and reads until the server closes (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(data)
        return _read_all(sock)


def _read_all(sock) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def _json(reply: bytes) -> dict:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


def _request(server, path, body=b"", headers=None, method="POST") -> bytes:
    headers = {"Host": f"127.0.0.1:{server.port}", "Connection": "close",
               "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n"
                                                       for k, v in headers.items() if v is not None)
    return _exchange(server, head.encode() + b"\r\n" + body)


def _session(server, body=None, content_type="image/png") -> str:
    reply = _request(server, "/api/session", body or _png(),
                     {"Content-Type": content_type})
    assert _status(reply) == 200, reply[:300]
    return _json(reply)["session"]


def _api(server, path, payload, content_type="application/json") -> bytes:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return _request(server, path, body, {"Content-Type": content_type})
