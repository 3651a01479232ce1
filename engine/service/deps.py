"""Request dependencies, as `Annotated` aliases the routes declare.

`create_app` puts the settings, the queue, the workflows and the metrics on `app.state`;
these read them back, check the bearer token, and turn a `TaskCreate` into a validated
`NewTask` (every refusal here happens before anything is queued).
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.service.errors import ApiError
from engine.service.metrics import Metrics
from engine.service.paths import check_callback_url, resolve_input_file, resolve_storage
from engine.service.queue.types import NewTask, TaskQueue
from engine.service.schemas import SUBMITTED_PATH_KEY, TaskCreate
from engine.service.settings import Settings
from engine.service.workflows import Workflow, WorkflowParameterError

# Request ids and idempotency keys: printable, no spaces, bounded (they land in logs).
_TOKEN_LIKE = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")


def well_formed_id(value: str | None) -> bool:
    return value is not None and _TOKEN_LIKE.match(value) is not None


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _queue(request: Request) -> TaskQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


def _workflows(request: Request) -> dict[str, Workflow]:
    return request.app.state.workflows  # type: ignore[no-any-return]


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def _request_id(request: Request) -> str:
    return request.state.request_id  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(_settings)]
QueueDep = Annotated[TaskQueue, Depends(_queue)]
WorkflowsDep = Annotated[dict[str, Workflow], Depends(_workflows)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
RequestIdDep = Annotated[str, Depends(_request_id)]

_bearer = HTTPBearer(auto_error=False, description="A token from AMP_API_TOKENS.")


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries one of the configured tokens (constant-time compare)."""
    if settings.allow_anonymous:
        return
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="amp"'},
        )
    given = credentials.credentials.encode()
    matched = False
    for token in settings.api_tokens:  # no early exit: every token is compared
        matched |= hmac.compare_digest(given, token.get_secret_value().encode())
    if not matched:
        raise ApiError(
            401,
            "unauthorized",
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="amp", error="invalid_token"'},
        )


def idempotency_key(
    idempotency_key: Annotated[str | None, Header()] = None,
    x_request_id: Annotated[str | None, Header()] = None,
) -> str | None:
    """The `Idempotency-Key` header, else the client's own `X-Request-ID` (never a generated
    one); None when neither is given."""
    if idempotency_key is not None:
        if not well_formed_id(idempotency_key):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-128 characters of letters, digits and ._:/+=@-",
            )
        return idempotency_key
    return x_request_id if well_formed_id(x_request_id) else None


def validated_task(
    body: TaskCreate, settings: SettingsDep, workflows: WorkflowsDep, request_id: RequestIdDep
) -> NewTask:
    """The submission as the queue stores it, after every check of the request."""
    workflow = workflows.get(body.workflow)
    if workflow is None:
        raise ApiError(
            422,
            "unknown_workflow",
            f"no workflow {body.workflow!r}; known: {', '.join(sorted(workflows))}",
            {"workflows": sorted(workflows)},
        )
    try:
        parameters = workflow.effective_parameters(body.parameters)
    except WorkflowParameterError as exc:
        raise ApiError(422, "parameter_not_applicable", str(exc)) from None
    if "storage" in parameters:
        storage = parameters["storage"]
        resolve_storage(storage.get("bucket"), storage.get("path_template"), settings.buckets)
    callback_url = None if body.callback_url is None else str(body.callback_url)
    if callback_url is not None:
        check_callback_url(callback_url, settings.callback_allowed_hosts)
    real_path = resolve_input_file(body.file_path, settings.input_roots)
    parameters[SUBMITTED_PATH_KEY] = body.file_path
    return NewTask(
        file_path=str(real_path),
        workflow=workflow.name,
        parameters=parameters,
        priority=body.priority,
        max_retries=(
            settings.default_max_retries if body.max_retries is None else body.max_retries
        ),
        callback_url=callback_url,
        metadata=dict(body.metadata),
        resource_requirements=workflow.resource_requirements(),
        request_id=request_id,
    )


Authenticated = Depends(require_token)
IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
ValidatedTaskDep = Annotated[NewTask, Depends(validated_task)]
