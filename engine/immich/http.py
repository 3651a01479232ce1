"""One request to Immich: send with the key, retry what is worth retrying, translate failures.

This is the boundary where httpx errors and HTTP statuses become AMP's `ImmichError` tree
(`raise ... from exc`, as httpx's own `map_httpcore_exceptions` does one layer down). The API
key lives only in the client's default headers; every text that reaches a message or a log
line goes through `redact` first.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from engine.errors import (
    ImmichError,
    ImmichNotFoundError,
    ImmichResponseError,
    ImmichUnavailableError,
)
from engine.immich.auth import (
    API_KEY_HEADER,
    forbidden_error,
    redact,
    unauthorized_error,
)
from engine.immich.retry import (
    RetryPolicy,
    delay_before_retry_s,
    is_retryable_exception,
    is_retryable_status,
)

log = logging.getLogger("engine.immich")

ModelT = TypeVar("ModelT", bound=BaseModel)

EXCERPT_CHARS = 200
RequestExtras = Callable[[], Mapping[str, Any]]  # fresh files/data per attempt (uploads)


class ImmichHttp:
    """A thread-safe httpx.Client bound to one Immich API root (`.../api`) and one key."""

    def __init__(
        self,
        api_root: str,
        api_key: str,
        *,
        timeout_s: float,
        policy: RetryPolicy,
        max_connections: int,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.api_root = api_root
        self.timeout_s = timeout_s
        self.policy = policy
        self._key = api_key
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._client = httpx.Client(
            headers={API_KEY_HEADER: api_key, "accept": "application/json", "user-agent": "amp"},
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"ImmichHttp(api_root={self.api_root!r}, api_key={'***'!r})"

    # -- sending -------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        api_path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        extras: RequestExtras | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """A 2xx response to `method api_path`, after retries; with `stream` the body is not
        read yet and the caller must close the response."""
        url = self.api_root + api_path
        attempts = self.policy.attempts
        for attempt in range(1, attempts + 1):
            request = self._client.build_request(
                method,
                url,
                params=params,
                json=json_body,
                headers=headers,
                **dict(extras() if extras else {}),
            )
            try:
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if not is_retryable_exception(exc) or attempt == attempts:
                    raise self.transport_error(method, api_path, exc, attempt) from exc
                self._wait(method, api_path, self._describe(exc), attempt, None)
                continue
            status = response.status_code
            if is_retryable_status(status) and attempt < attempts:
                retry_after = response.headers.get("retry-after") if status == 429 else None
                response.close()
                self._wait(method, api_path, f"HTTP {status}", attempt, retry_after)
                continue
            if response.is_success:
                return response
            try:
                body = response.read()
            except httpx.HTTPError:
                body = b""
            finally:
                response.close()
            raise self._status_error(method, api_path, status, body, attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get_json(self, api_path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.decode(self.send("GET", api_path, params=params), "GET", api_path)

    def call_json(self, method: str, api_path: str, *, json_body: Any = None, **kwargs: Any) -> Any:
        response = self.send(method, api_path, json_body=json_body, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return self.decode(response, method, api_path)

    # -- decoding ------------------------------------------------------------------------------

    def decode(self, response: httpx.Response, method: str, api_path: str) -> Any:
        """The JSON body, or ImmichResponseError quoting the start of what came instead."""
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise ImmichResponseError(
                f"{method} {api_path}: Immich answered with invalid JSON "
                f"({self._excerpt(response.content)}); is the URL an Immich server's?",
                method=method,
                path=api_path,
                status=response.status_code,
            ) from exc

    def parse(self, model: type[ModelT], data: Any, method: str, api_path: str) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            # `from None`: pydantic's text quotes the input, which could echo the key back.
            raise self._shape_error(model.__name__, exc, data, method, api_path) from None

    def parse_list(
        self, model: type[ModelT], data: Any, method: str, api_path: str
    ) -> list[ModelT]:
        try:
            return TypeAdapter(list[model]).validate_python(data)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise self._shape_error(
                f"list of {model.__name__}", exc, data, method, api_path
            ) from exc

    # -- internals -----------------------------------------------------------------------------

    def _wait(
        self, method: str, api_path: str, problem: str, attempt: int, retry_after: str | None
    ) -> None:
        with self._rng_lock:
            delay = delay_before_retry_s(
                attempt - 1, self.policy, self._rng, retry_after=retry_after
            )
        log.warning(
            "Immich %s %s: %s; retry %d of %d in %.2f s",
            method,
            api_path,
            problem,
            attempt,
            self.policy.max_retries,
            delay,
        )
        self._sleep(delay)

    def _describe(self, exc: BaseException) -> str:
        return redact(str(exc) or type(exc).__name__, self._key)

    def _excerpt(self, body: bytes | str) -> str:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        text = " ".join(redact(text, self._key).split())
        if not text:
            return "an empty body"
        return repr(text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else ""))

    def _server_message(self, body: bytes) -> str:
        """Immich's `message` (a string, or a list for validation errors), else the raw text."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        message: Any = data.get("message") if isinstance(data, dict) else None
        if isinstance(message, list):
            message = "; ".join(str(m) for m in message)
        if not isinstance(message, str):
            message = body.decode("utf-8", "replace")
        text = " ".join(redact(message, self._key).split())
        return text[:EXCERPT_CHARS]

    def transport_error(
        self, method: str, api_path: str, exc: httpx.HTTPError, attempts: int
    ) -> ImmichError:
        where = redact(self.api_root, self._key)
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, httpx.TimeoutException):
            message = (
                f"{method} {api_path}: Immich at {where} did not answer within "
                f"{self.timeout_s:g} s ({tries}); the server may be busy: try again later or "
                "raise the timeout"
            )
        elif isinstance(exc, httpx.ConnectError):
            message = (
                f"cannot reach Immich at {where}: {self._describe(exc)} ({method} {api_path}, "
                f"{tries}); is the server running and the URL right?"
            )
        else:
            message = (
                f"{method} {api_path}: the connection to Immich at {where} failed: "
                f"{self._describe(exc)} ({tries})"
            )
        return ImmichUnavailableError(message, method=method, path=api_path)

    def _status_error(
        self, method: str, api_path: str, status: int, body: bytes, attempts: int
    ) -> ImmichError:
        server = self._server_message(body)
        if status == 401:
            return unauthorized_error(method, api_path)
        if status == 403:
            return forbidden_error(method, api_path, server)
        if status == 404 or (status == 400 and server.startswith("Not found or no ")):
            # Immich answers 400 "Not found or no <permission> access" for ids it cannot see.
            return ImmichNotFoundError(
                f"{method} {api_path}: not found ({status}: {server or 'no reason given'}); "
                "it may have been deleted, or the key cannot see it",
                method=method,
                path=api_path,
                status=status,
            )
        if is_retryable_status(status):
            return ImmichUnavailableError(
                f"{method} {api_path}: Immich answered {status} ({server or 'no reason given'}) "
                f"after {attempts} attempts; try again later",
                method=method,
                path=api_path,
                status=status,
            )
        return ImmichResponseError(
            f"{method} {api_path}: Immich refused the request ({status}: "
            f"{server or 'no reason given'})",
            method=method,
            path=api_path,
            status=status,
        )

    def _shape_error(
        self, expected: str, exc: ValidationError, data: Any, method: str, api_path: str
    ) -> ImmichResponseError:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        reason = f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
        excerpt = self._excerpt(json.dumps(data, default=str))
        reason = redact(reason, self._key)
        return ImmichResponseError(
            f"{method} {api_path}: Immich's answer is not a {expected} ({reason}); got {excerpt}",
            method=method,
            path=api_path,
        )
