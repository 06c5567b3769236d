"""Who may call the Serve application and how much: the bearer token, a per-token rate limit, a body size cap.

The token is held as a pydantic `SecretStr`, so it prints as `**********` in any log or repr; it is compared
in constant time. Rate limits are token buckets per caller (token and address) kept in the gateway's memory, so with
several gateway replicas each enforces its own share (the limit a client sees is per gateway replica).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from pydantic import SecretStr


class Unauthorized(Exception):
    """The request lacks the bearer token (401)."""


class RateLimited(Exception):
    """The caller used up its rate (429); `retry_after_s` says when the next request is accepted."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"rate limit exceeded: retry in {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


def caller(expected: SecretStr | None, authorization: str | None, address: str) -> str:
    """Check the bearer token and name the caller for rate limiting: a fingerprint of its token (when auth
    is on) with its address, so clients sharing one token still get a bucket each.

    Args:
        expected: the configured token; None or empty switches auth off.
        authorization: the request's `Authorization` header.
        address: the client's address.
    Raises:
        Unauthorized: auth is on and the header is missing or holds another token.
    """
    secret = expected.get_secret_value() if expected is not None else ""
    if not secret:
        return address
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), secret.encode()):
        raise Unauthorized("missing or wrong bearer token (send 'Authorization: Bearer <token>')")
    return f"{hashlib.sha256(secret.encode()).hexdigest()[:12]}@{address}"


class RateLimiter:
    """A token bucket per caller: `burst` requests at once, refilled at `per_minute` per minute."""

    def __init__(self, per_minute: int, burst: int, clock=time.monotonic):
        self.per_second = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, caller: str) -> None:
        """Spend one request of `caller`'s bucket (RateLimited when it is empty); a rate of 0 never limits."""
        if self.per_second <= 0:
            return
        now = self.clock()
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.per_second)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            raise RateLimited((1.0 - tokens) / self.per_second)
        self._buckets[caller] = (tokens - 1.0, now)


class BodyLimit:
    """ASGI middleware answering 413 for a request body over `max_bytes`, before any route parses it.

    It reads the body (declared by Content-Length or streamed in chunks) up to the limit and replays it to the
    app, so a client cannot make the server hold more than `max_bytes` of one request.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send, int(declared))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._too_large(send, size)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send, size: int) -> None:
        await send_json(send, 413, f"request body: {size} bytes or more, over the limit of {self.max_bytes} bytes")


class Guard:
    """ASGI middleware: the bearer token and the caller's rate on every path but `open_paths` (401 / 429)."""

    def __init__(self, app, token: SecretStr | None, limiter: RateLimiter, open_paths: frozenset[str]):
        self.app = app
        self.token = token
        self.limiter = limiter
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        address = (scope.get("client") or ("unknown", 0))[0]
        try:
            self.limiter.take(caller(self.token, headers.get(b"authorization", b"").decode("latin-1"), address))
        except Unauthorized as err:
            return await send_json(send, 401, str(err), [(b"www-authenticate", b"Bearer")])
        except RateLimited as err:
            retry_after = str(max(1, round(err.retry_after_s))).encode()
            return await send_json(send, 429, str(err), [(b"retry-after", retry_after)])
        await self.app(scope, receive, send)


async def send_json(send, status: int, error: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer an ASGI request with `{"error": error}` and `status`."""
    payload = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})
