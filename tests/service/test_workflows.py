"""Declarative workflows: the built-in files, and every way a file is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.service.schemas import Parameters
from engine.service.workflows import (
    BUILTIN_DIR,
    NODE_KINDS,
    WorkflowError,
    WorkflowParameterError,
    all_workflows,
    load_workflows,
    parse_workflow,
)


def test_builtin_workflows_load() -> None:
    workflows = load_workflows(BUILTIN_DIR)
    assert set(workflows) >= {"nas-photo-processing", "photo-analysis", "photo-copy"}

    nas = workflows["nas-photo-processing"]
    assert nas.kinds == (
        "decode",
        "ai/image-enhance",
        "ai/face-detect",
        "ai/face-embed",
        "similarity",
        "store",
    )
    assert nas.gpu_preferred
    assert nas.resource_requirements()["gpu_required"] is False  # AMP runs on a CPU too
    assert nas.resource_requirements()["accelerator_type"] == "nvidia-tesla-t4"

    analysis = workflows["photo-analysis"]
    assert "ai/image-enhance" not in analysis.kinds
    assert not analysis.gpu_preferred
    assert workflows["photo-copy"].kinds == ("decode", "store")
    for workflow in workflows.values():
        assert all(node.kind in NODE_KINDS for node in workflow.nodes)


def test_effective_parameters_overlay_the_workflow_defaults() -> None:
    nas = load_workflows()["nas-photo-processing"]
    requested = Parameters.model_validate(
        {"image_enhance": {"denoise_strength": 0.3}, "storage": {"bucket": "b"}}
    )
    effective = nas.effective_parameters(requested)
    assert effective["image_enhance"] == {"scale_factor": 2, "denoise_strength": 0.3}
    assert effective["storage"] == {
        "bucket": "b",
        "path_template": "year={year}/month={month}/{filename}",
    }
    assert effective["face_detect"] == {}
    assert effective["similarity"] == {"top_k": 10}

    copy = load_workflows()["photo-copy"]
    with pytest.raises(WorkflowParameterError, match="image_enhance.*photo-copy"):
        copy.effective_parameters(requested)


def workflow(nodes: str, header: str = "") -> str:
    return f'name = "custom"\ndescription = "test"\n{header}\n{nodes}'


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            workflow('[[nodes]]\nkind = "decode"\n[[nodes]]\nkind = "ai/colourise"'),
            "unknown kind 'ai/colourise'; known kinds: decode",
        ),
        (
            workflow('[[nodes]]\nkind = "decode"\n[[nodes]]\nkind = "ai/face-embed"'),
            "needs ai/face-detect",
        ),
        (workflow('[[nodes]]\nkind = "ai/image-enhance"'), "needs decode"),
        (
            workflow('[[nodes]]\nkind = "decode"\n[[nodes]]\nkind = "decode"\nname = "again"'),
            "appears twice",
        ),
        (
            workflow('[[nodes]]\nkind = "decode"\n[[nodes]]\nkind = "store"\nname = "decode"'),
            "two nodes are named",
        ),
        (
            workflow(
                '[[nodes]]\nkind = "decode"\n[[nodes]]\nkind = "ai/image-enhance"\n'
                "options = { scale_factor = 20 }"
            ),
            "scale_factor",
        ),
        (
            workflow(
                '[[nodes]]\nkind = "decode"\n[[nodes]]\nkind = "store"\noptions = { sharpen = 1 }'
            ),
            "sharpen",
        ),
        (workflow('[[nodes]]\nkind = "decode"\noptions = { x = 1 }'), "options are invalid"),
        (workflow(""), "no nodes"),
        (workflow('[[nodes]]\nkind = "decode"', "gpu_preferred = true"), "no node can use a GPU"),
        (workflow('[[nodes]]\nkind = "decode"', "colour = 1"), "unknown keys"),
        (workflow('[[nodes]]\nkind = "decode"', "[resources]\nmemory_mb = -1"), "positive"),
        (workflow('[[nodes]]\nkind = "decode"', "[resources]\ngpu_required = 1"), "wrong type"),
        (workflow('[[nodes]]\nkind = "decode"', "[resources]\ndisk_gb = 1"), "unknown key"),
        ('name = "Bad Name"\n[[nodes]]\nkind = "decode"', "lower-case"),
        ("[[nodes]\n", "not valid TOML"),
    ],
)
def test_invalid_workflow_files_are_refused_clearly(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "custom.toml").write_text(text)
    with pytest.raises(WorkflowError, match=match) as raised:
        load_workflows(tmp_path)
    assert "custom.toml" in str(raised.value)


def test_the_name_must_match_the_file(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text(workflow('[[nodes]]\nkind = "decode"'))
    with pytest.raises(WorkflowError, match="differs from the file name"):
        load_workflows(tmp_path)


def test_extra_workflows_add_to_and_replace_the_builtin_ones(tmp_path: Path) -> None:
    (tmp_path / "photo-copy.toml").write_text(
        'name = "photo-copy"\n[[nodes]]\nkind = "decode"\n'
        '[[nodes]]\nkind = "store"\noptions = { path_template = "copies/{filename}" }\n'
    )
    (tmp_path / "custom.toml").write_text(workflow('[[nodes]]\nkind = "decode"'))
    workflows = all_workflows(tmp_path)
    assert workflows["photo-copy"].node("store").options == {"path_template": "copies/{filename}"}
    assert "custom" in workflows and "nas-photo-processing" in workflows


def test_parse_workflow_accepts_a_mapping() -> None:
    parsed = parse_workflow(
        {"name": "mini", "nodes": [{"kind": "decode"}, {"kind": "store", "name": "save"}]},
        "<memory>",
    )
    assert [node.name for node in parsed.nodes] == ["decode", "save"]
    assert parsed.resource_requirements() == {"gpu_required": False}
