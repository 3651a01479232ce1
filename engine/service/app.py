"""`create_app(settings, queue)`: the FastAPI application of `amp serve`.

Two ASGI middlewares wrap the routes, outermost first:

1. `RequestContextMiddleware`: takes the client's `X-Request-ID` (if well formed) or makes a
   uuid4, puts it on every response (errors included), times the request for `/metrics`,
   and turns an unhandled exception into a 500 `internal_error` body, logging the traceback.
2. `BodyLimitMiddleware`: reads the whole body before any parsing, refusing with 413 as soon
   as `Content-Length` or the bytes received pass `max_body_bytes` (chunked uploads too).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import __version__
from engine.service.deps import well_formed_id
from engine.service.errors import error_response, install_error_handlers
from engine.service.metrics import Metrics
from engine.service.queue.types import TaskQueue
from engine.service.routes import service, tasks
from engine.service.settings import Settings
from engine.service.workflows import all_workflows

log = logging.getLogger("engine.service")

REQUEST_ID_HEADER = "x-request-id"


def create_app(settings: Settings, queue: TaskQueue) -> FastAPI:
    """The API over `queue`. Raises ServiceConfigError (no token, root or bucket) and
    WorkflowError (a bad workflow file) at once, before serving anything."""
    settings.require_servable()
    workflows = all_workflows(settings.workflows_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "AMP API: %d workflows (%s), %d input roots, buckets %s, auth %s",
            len(workflows),
            ", ".join(sorted(workflows)),
            len(settings.input_roots),
            ", ".join(sorted(settings.buckets)),
            "off (allow_anonymous)" if settings.allow_anonymous else "bearer token",
        )
        yield

    app = FastAPI(
        title="AMP processing-task API",
        version=__version__,
        description="Queue photos for AMP's workflows (Real-ESRGAN enhancement, faces, "
        "similar photos) and follow them to completion.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.queue = queue
    app.state.workflows = workflows
    app.state.metrics = Metrics()
    install_error_handlers(app)
    app.include_router(tasks)
    app.include_router(service)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)  # outermost
    return app


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, REQUEST_ID_HEADER)
        request_id = given if well_formed_id(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("request %s failed: %s %s", request_id, scope["method"], scope["path"])
            if response_started:
                raise
            response = error_response(
                500,
                "internal_error",
                f"the service failed on this request; quote request id {request_id} "
                "when reporting it",
            )
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                scope["method"], label, status, time.perf_counter() - started
            )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, "content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(
                    scope, receive, send, 400, "bad_request", "Content-Length is not a number"
                )
                return
            if int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _refuse(
            scope,
            receive,
            send,
            413,
            "body_too_large",
            f"the request body is over the limit of {self.max_bytes} bytes",
            {"max_body_bytes": self.max_bytes},
        )


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    details: object = None,
) -> None:
    # Connection: close, since the rest of an oversize body is left unread.
    response = error_response(status, code, message, details, {"Connection": "close"})
    await response(scope, receive, send)


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None
