"""The API key: checking it before use, keeping it out of text, and explaining a refusal.

Immich keys carry permissions; a 403 means the key lacks the one an endpoint needs. Immich's
own message names it ("Missing required permission: person.read"); when a proxy or an older
server sends a bare 403, the endpoint table below names it instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import ImmichAuthError

API_KEY_HEADER = "x-api-key"
REDACTED = "***"

KEY_HELP = "create one under Account Settings > API Keys"


@dataclass(frozen=True)
class EndpointPermission:
    method: str
    pattern: re.Pattern[str]  # matched against the path after /api
    permission: str | None
    admin: bool = False  # an admin user's key is needed, whatever its permissions


def _rule(
    method: str, path: str, permission: str | None, admin: bool = False
) -> EndpointPermission:
    regex = "^" + re.sub(r"\{[a-zA-Z]+\}", "[^/]+", path) + "$"
    return EndpointPermission(method, re.compile(regex), permission, admin)


# As Immich's controllers declare them (`@Authenticated({ permission })`), for the endpoints
# AMP calls. Literal paths come before the `{id}` patterns they would also match.
ENDPOINT_PERMISSIONS: tuple[EndpointPermission, ...] = (
    _rule("GET", "/jobs", "job.read", admin=True),
    _rule("GET", "/people", "person.read"),
    _rule("POST", "/people/merge", "person.merge"),
    _rule("GET", "/people/{id}", "person.read"),
    _rule("PUT", "/people/{id}", "person.update"),
    _rule("GET", "/people/{id}/statistics", "person.statistics"),
    _rule("POST", "/people/{id}/merge", "person.merge"),
    _rule("PUT", "/people/{id}/reassign", "person.reassign"),
    _rule("GET", "/faces", "face.read"),
    _rule("POST", "/faces", "face.create"),
    _rule("PUT", "/faces/{id}", "face.update"),
    _rule("POST", "/assets", "asset.upload"),
    _rule("POST", "/assets/jobs", "job.create"),
    _rule("GET", "/assets/statistics", "asset.statistics"),
    _rule("GET", "/assets/{id}", "asset.read"),
    _rule("GET", "/assets/{id}/original", "asset.download"),
    _rule("GET", "/assets/{id}/thumbnail", "asset.view"),
    _rule("POST", "/search/metadata", "asset.read"),
)

_MISSING_PERMISSION = re.compile(r"Missing required permission:?\s*([a-z]+(?:\.[a-zA-Z]+)+)")


def endpoint_permission(method: str, api_path: str) -> EndpointPermission | None:
    """The rule for `method api_path` (the path after /api, without query), if AMP knows it."""
    for rule in ENDPOINT_PERMISSIONS:
        if rule.method == method.upper() and rule.pattern.match(api_path):
            return rule
    return None


def check_api_key(api_key: str) -> str:
    """The key, stripped; refuses one that is empty or would break the header (never quoting it)."""
    key = api_key.strip() if isinstance(api_key, str) else ""
    if not key:
        raise ImmichAuthError(f"no Immich API key given; {KEY_HELP}")
    if any(ch in key for ch in "\r\n\0") or not key.isascii():
        raise ImmichAuthError(
            f"the Immich API key contains characters a key cannot have; copy it again ({KEY_HELP})"
        )
    return key


def redact(text: str, api_key: str) -> str:
    """`text` with every occurrence of the key replaced: server messages and exception texts
    are quoted in errors, and a misbehaving proxy could echo the header back."""
    return text.replace(api_key, REDACTED) if api_key else text


def unauthorized_error(method: str, api_path: str) -> ImmichAuthError:
    return ImmichAuthError(
        f"{method} {api_path}: Immich rejected the API key (401): it is missing, wrong or revoked; "
        f"{KEY_HELP}",
        method=method,
        path=api_path,
        status=401,
    )


def forbidden_error(method: str, api_path: str, server_message: str) -> ImmichAuthError:
    """A 403 that names what is missing: the permission from Immich's message, else from the
    endpoint table; or an admin user's key for admin-only endpoints."""
    named = _MISSING_PERMISSION.search(server_message)
    rule = endpoint_permission(method, api_path)
    permission = named.group(1) if named else (rule.permission if rule else None)
    if named is None and rule is not None and rule.admin:
        detail = (
            f"this endpoint needs the key of an admin user with the '{rule.permission}' "
            "permission; use an admin's key or leave this feature off"
        )
    elif permission is not None:
        detail = (
            f"the API key lacks the '{permission}' permission; edit the key under "
            f"Account Settings > API Keys and grant '{permission}'"
        )
    else:
        detail = f"Immich refused the request ({server_message or 'no reason given'})"
    return ImmichAuthError(
        f"{method} {api_path}: {detail} (403)", method=method, path=api_path, status=403
    )
