"""`amp immich apply FINDINGS.json`: carry out the fixes a person kept, through Immich's API.

The file is the JSON that `amp immich reconcile` wrote, edited by a person: findings they do
not want are deleted or marked `"keep": false`, and people may be named in a top-level
`"renames": {"<person id>": "<name>"}`. Actions, by finding kind:

- reassign_face: move the face to the suggested person (PUT /faces/{personId});
- merge_people: merge the other people into the suggested one (POST /people/{id}/merge);
- unnamed_matches_named: merge the unnamed person into the named one, or move the unassigned
  face to it;
- renames: rename the person (PUT /people/{id}).

Detection findings, splits and duplicates need a person's judgement in Immich's UI and are
listed, never acted on. Nothing changes without `execute`; each step first reads the current
state and skips what is already done (safe to rerun), and every change is appended to a
JSON-lines log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from engine.errors import ImmichNotFoundError, InputError
from engine.immich.client import ImmichClient

ActionKind = Literal["reassign_face", "merge_people", "rename_person"]
Outcome = Literal["planned", "done", "already-done", "gone", "failed", "manual"]


@dataclass(frozen=True)
class Action:
    kind: ActionKind | Literal["manual"]
    description: str
    face_id: str | None = None
    asset_id: str | None = None
    person_id: str | None = None  # the target person
    source_ids: tuple[str, ...] = ()  # people merged into person_id
    name: str | None = None


@dataclass(frozen=True)
class ActionResult:
    action: Action
    outcome: Outcome
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        a = self.action
        return {
            "kind": a.kind,
            "description": a.description,
            "face_id": a.face_id,
            "asset_id": a.asset_id,
            "person_id": a.person_id,
            "source_ids": list(a.source_ids),
            "name": a.name,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def load_actions(path: Path) -> list[Action]:
    """The actions a findings file asks for, in a safe order: renames, moves, then merges."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no findings file at {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a findings JSON file: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("findings", []), list):
        raise InputError(f"{path} has no 'findings' list: give the file reconcile wrote")
    actions = [
        Action("rename_person", f"rename {pid} to {name!r}", person_id=pid, name=str(name))
        for pid, name in (document.get("renames") or {}).items()
    ]
    for finding in document.get("findings", []):
        if isinstance(finding, dict) and finding.get("keep", True):
            actions.append(_action_for(finding))
    order = {"rename_person": 0, "reassign_face": 1, "merge_people": 2, "manual": 3}
    return sorted(actions, key=lambda a: order[a.kind])


def _action_for(finding: dict[str, Any]) -> Action:
    kind = finding.get("kind")
    message = str(finding.get("message", kind))
    target = finding.get("suggested_person_id")
    faces = list(finding.get("immich_face_ids") or [])
    people = list(finding.get("person_ids") or [])
    assets = list(finding.get("asset_ids") or [])
    if kind == "reassign_face" and target and faces:
        return Action("reassign_face", message, faces[0], assets[0] if assets else None, target)
    if kind == "merge_people" and target:
        sources = tuple(p for p in people if p != target)
        return Action("merge_people", message, person_id=target, source_ids=sources)
    if kind == "unnamed_matches_named" and target:
        sources = tuple(p for p in people if p != target)
        if sources:
            return Action("merge_people", message, person_id=target, source_ids=sources)
        if faces:
            return Action("reassign_face", message, faces[0], assets[0] if assets else None, target)
    return Action("manual", message)


def apply_actions(
    client: ImmichClient, actions: list[Action], *, execute: bool, log_path: Path | None
) -> list[ActionResult]:
    results = []
    for action in actions:
        result = _apply(client, action) if execute else ActionResult(action, "planned")
        if action.kind == "manual":
            result = ActionResult(action, "manual", "needs a person's judgement in Immich")
        results.append(result)
        if execute and log_path is not None and result.outcome in ("done", "failed"):
            _log(log_path, result)
    return results


def _apply(client: ImmichClient, action: Action) -> ActionResult:
    try:
        if action.kind == "rename_person" and action.person_id and action.name is not None:
            if client.person(action.person_id).name == action.name:
                return ActionResult(action, "already-done")
            client.rename_person(action.person_id, action.name)
            return ActionResult(action, "done")
        if action.kind == "reassign_face" and action.face_id and action.person_id:
            if action.asset_id is not None:
                current = next(
                    (f for f in client.faces(action.asset_id) if f.id == action.face_id), None
                )
                if current is None:
                    return ActionResult(action, "gone", "the face no longer exists in Immich")
                if current.person is not None and current.person.id == action.person_id:
                    return ActionResult(action, "already-done")
            client.reassign_face(action.face_id, action.person_id)
            return ActionResult(action, "done")
        if action.kind == "merge_people" and action.person_id:
            client.person(action.person_id)  # the target must still exist
            remaining = [p for p in action.source_ids if _exists(client, p)]
            if not remaining:
                return ActionResult(action, "already-done")
            results = client.merge_people(action.person_id, remaining)
            failed = [r for r in results if not r.success]
            if failed:
                detail = "; ".join(f"{r.id}: {r.error_message or r.error}" for r in failed)
                return ActionResult(action, "failed", detail)
            return ActionResult(action, "done")
    except ImmichNotFoundError as exc:
        return ActionResult(action, "gone", str(exc))
    return ActionResult(action, "manual")


def _exists(client: ImmichClient, person_id: str) -> bool:
    try:
        client.person(person_id)
    except ImmichNotFoundError:
        return False
    return True


def _log(path: Path, result: ActionResult) -> None:
    entry = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        log.write(json.dumps(entry) + "\n")
