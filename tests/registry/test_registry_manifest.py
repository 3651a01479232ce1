"""models/manifest.toml parses, and its sizes and sha256 values are the official ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import ModelError, ModelNotFoundError
from engine.registry.manifest import (
    CHECKOUT_MANIFEST,
    EnhanceEntry,
    FaceDetectorEntry,
    FacePackEntry,
    RRDBNetwork,
    SRVGGNetwork,
    default_manifest_path,
    load_manifest,
    parse_manifest,
)

REQUIRED = {
    "realesr-general-x4v3": "enhance",
    "realesr-general-wdn-x4v3": "enhance",
    "RealESRGAN_x4plus": "enhance",
    "RealESRGAN_x2plus": "enhance",
    "realesr-animevideov3": "enhance",
    "buffalo_l": "face-pack",
    "buffalo_s": "face-pack",
    "face_detection_yunet_2023mar": "face-detector",
}

# A table row of MANIFEST.md: | `file` ... | 1,234 | `sha256` | ...
_ROW = re.compile(r"^\|\s*`([^`]+)`[^|]*\|\s*([\d,]+)\s*\|\s*`([0-9a-f]{64})`", re.MULTILINE)


def official_files(manifest_md: Path) -> dict[str, tuple[int, str]]:
    """file name -> (size, sha256) for the official files MANIFEST.md pins (not unofficial/)."""
    text = manifest_md.read_text(encoding="utf-8")
    rows = {
        name: (int(size.replace(",", "")), sha)
        for name, size, sha in _ROW.findall(text)
        if not name.startswith("unofficial/")
    }
    anime = re.search(r"realesr-animevideov3.*?official sha256 `([0-9a-f]{64})`", text, re.S)
    assert anime is not None
    rows["realesr-animevideov3.pth"] = (-1, anime.group(1))  # size not given there
    return rows


def test_manifest_has_every_required_model() -> None:
    manifest = load_manifest()
    assert {name: manifest.get(name).kind for name in REQUIRED} == REQUIRED


def test_sizes_and_sha256_match_the_independent_record(shared_manifest_md: Path) -> None:
    official = official_files(shared_manifest_md)
    manifest = load_manifest()
    checked = set()
    for entry in manifest.models.values():
        for file in entry.files:
            assert file.name in official, f"{entry.name}/{file.name} is not in MANIFEST.md"
            size, sha = official[file.name]
            assert file.sha256 == sha, file.name
            if size >= 0:
                assert file.size == size, file.name
            checked.add(file.name)
    required_files = {
        "realesr-general-x4v3.pth",
        "realesr-general-wdn-x4v3.pth",
        "RealESRGAN_x4plus.pth",
        "RealESRGAN_x2plus.pth",
        "realesr-animevideov3.pth",
        "det_10g.onnx",
        "w600k_r50.onnx",
        "1k3d68.onnx",
        "2d106det.onnx",
        "genderage.onnx",
        "det_500m.onnx",
        "w600k_mbf.onnx",
        "face_detection_yunet_2023mar.onnx",
    }
    assert required_files <= checked


def test_network_settings() -> None:
    manifest = load_manifest()
    general = manifest.get("realesr-general-x4v3")
    assert isinstance(general, EnhanceEntry)
    assert general.network == SRVGGNetwork(
        arch="SRVGGNetCompact", num_feat=64, num_conv=32, scale=4, act_type="prelu"
    )
    assert general.denoise_partner == "realesr-general-wdn-x4v3"
    anime = manifest.get("realesr-animevideov3")
    assert isinstance(anime, EnhanceEntry) and isinstance(anime.network, SRVGGNetwork)
    assert anime.network.num_conv == 16
    for name, scale in (("RealESRGAN_x4plus", 4), ("RealESRGAN_x2plus", 2)):
        entry = manifest.get(name)
        assert isinstance(entry, EnhanceEntry) and isinstance(entry.network, RRDBNetwork)
        assert entry.network.model_dump() == {
            "arch": "RRDBNet",
            "scale": scale,
            "num_in_ch": 3,
            "num_out_ch": 3,
            "num_feat": 64,
            "num_block": 23,
            "num_grow_ch": 32,
        }
    for name, detector, recognizer in (
        ("buffalo_l", "det_10g.onnx", "w600k_r50.onnx"),
        ("buffalo_s", "det_500m.onnx", "w600k_mbf.onnx"),
    ):
        pack = manifest.get(name)
        assert isinstance(pack, FacePackEntry)
        assert pack.archive_url.endswith(f"/v0.7/{name}.zip")
        assert pack.file_for("detection").name == detector
        assert pack.file_for("recognition").name == recognizer
        assert all(f.url is None for f in pack.files)
        net = pack.network
        assert (net.det_input_px, net.det_thresh, net.nms_thresh) == (640, 0.7, 0.4)
        assert (net.embedding_dim, net.rec_input_px) == (512, 112)
    yunet = manifest.get("face_detection_yunet_2023mar")
    assert isinstance(yunet, FaceDetectorEntry)
    assert yunet.license == "MIT"


def test_the_packs_share_their_landmark_and_attribute_files() -> None:
    manifest = load_manifest()
    large = {f.name: f for f in manifest.get("buffalo_l").files}
    small = {f.name: f for f in manifest.get("buffalo_s").files}
    for name in ("1k3d68.onnx", "2d106det.onnx", "genderage.onnx"):
        assert large[name] == small[name]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'.*RealESRGAN_x4plus"):
        load_manifest().get("nope")


def test_default_path_is_the_checkout_manifest_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AMP_MANIFEST", raising=False)
    assert default_manifest_path() == CHECKOUT_MANIFEST
    monkeypatch.setenv("AMP_MANIFEST", str(tmp_path / "m.toml"))
    assert default_manifest_path() == tmp_path / "m.toml"
    with pytest.raises(ModelError, match="cannot read the model manifest"):
        load_manifest()


_VALID_FILE = 'name = "a.pth"\nsha256 = "' + "0" * 64 + '"\n'


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # A direct download without a url.
        (
            '[models.a]\nkind = "face-detector"\nlicense = "x"\ndescription = "x"\n'
            "[models.a.network]\ninput_px = 1\nscore_thresh = 0.5\nnms_thresh = 0.5\ntop_k = 1\n"
            f"[[models.a.files]]\n{_VALID_FILE}",
            "a url is needed",
        ),
        # Archive members carry no url.
        (
            '[models.a]\nkind = "face-detector"\nlicense = "x"\ndescription = "x"\n'
            'archive_url = "https://example.invalid/a.zip"\n'
            "[models.a.network]\ninput_px = 1\nscore_thresh = 0.5\nnms_thresh = 0.5\ntop_k = 1\n"
            f'[[models.a.files]]\n{_VALID_FILE}url = "https://example.invalid/a.pth"\n',
            "archive members take no url",
        ),
        # Not a sha256.
        (
            '[models.a]\nkind = "face-detector"\nlicense = "x"\ndescription = "x"\n'
            "[models.a.network]\ninput_px = 1\nscore_thresh = 0.5\nnms_thresh = 0.5\ntop_k = 1\n"
            '[[models.a.files]]\nname = "a.pth"\nsha256 = "abc"\nurl = "https://e.invalid/a"\n',
            "sha256",
        ),
        # A file name with a directory part would escape the model directory.
        (
            '[models.a]\nkind = "face-detector"\nlicense = "x"\ndescription = "x"\n'
            "[models.a.network]\ninput_px = 1\nscore_thresh = 0.5\nnms_thresh = 0.5\ntop_k = 1\n"
            f'[[models.a.files]]\nname = "../a.pth"\nsha256 = "{"0" * 64}"\n'
            'url = "https://e.invalid/a"\n',
            "name",
        ),
        # Unknown kind.
        ('[models.a]\nkind = "speech"\nlicense = "x"\ndescription = "x"\n', "kind"),
        # A denoise partner that does not exist.
        (
            '[models.a]\nkind = "enhance"\nlicense = "x"\ndescription = "x"\n'
            'denoise_partner = "b"\n'
            '[models.a.network]\narch = "SRVGGNetCompact"\nnum_conv = 2\nscale = 4\n'
            f'[[models.a.files]]\n{_VALID_FILE}url = "https://e.invalid/a"\n',
            "denoise_partner 'b'",
        ),
    ],
)
def test_invalid_manifests_are_rejected_with_the_reason(body: str, problem: str) -> None:
    with pytest.raises(ModelError, match=f"invalid: .*{re.escape(problem)}"):
        parse_manifest("schema_version = 1\n" + body)


def test_invalid_toml_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not valid TOML"):
        parse_manifest("schema_version = = 1")
