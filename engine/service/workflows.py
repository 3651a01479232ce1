"""Declarative workflows: one TOML file per workflow, its nodes run in order.

A file (see `workflows/nas-photo-processing.toml`):

    name = "nas-photo-processing"
    description = "..."
    gpu_preferred = true            # runs on a CPU too, faster on a GPU
    [resources]                     # declared, not measured; becomes resource_requirements
    gpu_required = false
    accelerator_type = "nvidia-tesla-t4"
    [[nodes]]
    kind = "decode"
    [[nodes]]
    kind = "ai/image-enhance"
    options = { scale_factor = 2 }  # defaults; a request's parameters override them

This module defines and validates workflows; the worker executes the nodes. `NODE_KINDS` is
the registry of node kinds, each with the request parameter it takes, the option model that
validates it, the kinds that must run before it, and whether it can use a GPU.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.errors import AmpError
from engine.service.schemas import (
    FaceDetectParams,
    ImageEnhanceParams,
    Parameters,
    SimilarityParams,
    StorageParams,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).with_name("workflows")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class WorkflowError(AmpError):
    """A workflow file that cannot be used; says which file and what to change."""

    def __init__(self, source: Path | str, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"workflow {self.source}: {reason}")


class _NoOptions(BaseModel):
    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class NodeKind:
    """What a node kind is, as data."""

    kind: str
    parameter: str | None  # the field of `Parameters` a request sets it with
    options: type[BaseModel]  # validates the workflow's defaults and the request's values
    requires: tuple[str, ...] = ()  # kinds that must come earlier in the workflow
    uses_gpu: bool = False  # faster on a GPU when the worker has one


NODE_KINDS: dict[str, NodeKind] = {
    node.kind: node
    for node in (
        NodeKind("decode", None, _NoOptions),
        NodeKind(
            "ai/image-enhance", "image_enhance", ImageEnhanceParams, ("decode",), uses_gpu=True
        ),
        NodeKind("ai/face-detect", "face_detect", FaceDetectParams, ("decode",), uses_gpu=True),
        NodeKind("ai/face-embed", None, _NoOptions, ("ai/face-detect",), uses_gpu=True),
        NodeKind("similarity", "similarity", SimilarityParams, ("ai/face-embed",)),
        NodeKind("store", "storage", StorageParams, ("decode",)),
    )
}


@dataclass(frozen=True)
class Node:
    kind: str
    name: str  # unique in its workflow; shown as the task's current_node
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str
    nodes: tuple[Node, ...]
    gpu_preferred: bool = False
    resources: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(node.kind for node in self.nodes)

    def node(self, kind: str) -> Node | None:
        return next((node for node in self.nodes if node.kind == kind), None)

    def resource_requirements(self) -> dict[str, Any]:
        """The task's `resource_requirements`: the file's `[resources]`, with gpu_required
        false unless declared (AMP runs every node on a CPU too)."""
        return {"gpu_required": False, **self.resources}

    def effective_parameters(self, requested: Parameters) -> dict[str, Any]:
        """The workflow's node defaults overlaid with the request's values, per parameter
        name; unset values are left out. Raises WorkflowParameterError for a parameter whose
        node this workflow does not have."""
        effective: dict[str, Any] = {}
        wanted = {kind.parameter: kind for kind in NODE_KINDS.values() if kind.parameter}
        for parameter, node_kind in wanted.items():
            given = getattr(requested, parameter)
            node = self.node(node_kind.kind)
            if node is None:
                if given is not None:
                    raise WorkflowParameterError(self, parameter, node_kind.kind)
                continue
            values = dict(node.options)
            if given is not None:
                values.update(given.model_dump(exclude_none=True))
            effective[parameter] = values
        return effective


class WorkflowParameterError(AmpError):
    def __init__(self, workflow: Workflow, parameter: str, kind: str) -> None:
        self.workflow = workflow.name
        self.parameter = parameter
        self.kind = kind
        super().__init__(
            f"parameters.{parameter} applies to the {kind} node, which workflow "
            f"{workflow.name!r} does not have (its nodes: {', '.join(workflow.kinds)}); "
            "remove it or choose another workflow"
        )


def parse_workflow(data: Mapping[str, Any], source: Path | str) -> Workflow:
    """A validated `Workflow` from a TOML file's table."""
    allowed = {"name", "description", "gpu_preferred", "resources", "nodes"}
    unknown = set(data) - allowed
    if unknown:
        raise WorkflowError(source, f"unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise WorkflowError(
            source, f"name {name!r} must be lower-case letters, digits and '-' (1-63 chars)"
        )
    description = data.get("description", "")
    gpu_preferred = data.get("gpu_preferred", False)
    resources = data.get("resources", {})
    if not isinstance(description, str) or not isinstance(gpu_preferred, bool):
        raise WorkflowError(source, "description must be a string and gpu_preferred a boolean")
    if not isinstance(resources, dict):
        raise WorkflowError(source, "[resources] must be a table")
    _check_resources(resources, source)

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise WorkflowError(source, "no nodes: add [[nodes]] tables, one per step, in order")
    nodes: list[Node] = []
    for position, raw in enumerate(raw_nodes, 1):
        nodes.append(_parse_node(raw, position, nodes, source))
    if gpu_preferred and not any(NODE_KINDS[node.kind].uses_gpu for node in nodes):
        raise WorkflowError(source, "gpu_preferred is true but no node can use a GPU")
    return Workflow(name, description, tuple(nodes), gpu_preferred, dict(resources))


def _parse_node(raw: Any, position: int, earlier: list[Node], source: Path | str) -> Node:
    where = f"node {position}"
    if not isinstance(raw, dict):
        raise WorkflowError(source, f"{where} must be a table with a kind")
    unknown = set(raw) - {"kind", "name", "options"}
    if unknown:
        raise WorkflowError(source, f"{where} has unknown keys {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in NODE_KINDS:
        raise WorkflowError(
            source, f"{where} has unknown kind {kind!r}; known kinds: {', '.join(NODE_KINDS)}"
        )
    node_kind = NODE_KINDS[kind]
    name = raw.get("name", kind)
    if not isinstance(name, str) or not name:
        raise WorkflowError(source, f"{where} name must be a non-empty string")
    if any(node.name == name for node in earlier):
        raise WorkflowError(source, f"{where}: two nodes are named {name!r}; give each its own")
    if any(node.kind == kind for node in earlier):
        raise WorkflowError(source, f"{where}: kind {kind} appears twice")
    missing = [need for need in node_kind.requires if not any(n.kind == need for n in earlier)]
    if missing:
        raise WorkflowError(source, f"{where} ({kind}) needs {', '.join(missing)} to run before it")
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise WorkflowError(source, f"{where} options must be a table")
    try:
        checked = node_kind.options.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise WorkflowError(source, f"{where} ({kind}) options are invalid: {problems}") from None
    return Node(kind, name, checked.model_dump(exclude_none=True))


def _check_resources(resources: Mapping[str, Any], source: Path | str) -> None:
    types: dict[str, type | tuple[type, ...]] = {
        "gpu_required": bool,
        "accelerator_type": str,
        "memory_mb": int,
        "cpu_millis": int,
    }
    for key, value in resources.items():
        if key not in types:
            raise WorkflowError(source, f"[resources] has unknown key {key!r}: {sorted(types)}")
        if not isinstance(value, types[key]) or (key != "gpu_required" and isinstance(value, bool)):
            raise WorkflowError(source, f"[resources] {key} has the wrong type ({value!r})")
        if key in ("memory_mb", "cpu_millis") and value <= 0:
            raise WorkflowError(source, f"[resources] {key} must be positive")


def load_workflow(path: Path) -> Workflow:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkflowError(path, exc.strerror or str(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowError(path, f"not valid TOML: {exc}") from exc
    workflow = parse_workflow(data, path)
    if workflow.name != path.stem:
        raise WorkflowError(path, f"name {workflow.name!r} differs from the file name")
    return workflow


def load_workflows(directory: Path = BUILTIN_DIR) -> dict[str, Workflow]:
    """Every `*.toml` workflow in `directory`, by name."""
    if not directory.is_dir():
        raise WorkflowError(directory, "not a folder of workflow .toml files")
    workflows = {}
    for path in sorted(directory.glob("*.toml")):
        workflow = load_workflow(path)
        workflows[workflow.name] = workflow
    return workflows


def all_workflows(extra_dir: Path | None = None) -> dict[str, Workflow]:
    """The built-in workflows, then those of `extra_dir`, which replace same-named ones."""
    workflows = load_workflows(BUILTIN_DIR)
    if extra_dir is not None:
        workflows.update(load_workflows(extra_dir))
    return workflows
