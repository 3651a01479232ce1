from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, JpegImagePlugin

from engine.errors import OptionError
from engine.io.decode import read_image
from engine.io.encode import encode_image, to_uint8

# (format, dtype, channels): every combination whose metadata must survive.
METADATA_CASES = [
    ("jpeg", np.uint8, 3),
    ("jpeg", np.uint8, 1),
    ("png", np.uint8, 3),
    ("png", np.uint16, 3),
    ("png", np.uint16, 4),
    ("png", np.uint16, 1),
    ("webp", np.uint8, 3),
    ("webp", np.uint8, 4),
    ("tiff", np.uint8, 3),
    ("tiff", np.uint16, 3),
    ("tiff", np.uint16, 1),
]


def _shape(channels: int) -> tuple[int, ...]:
    return (6, 9) if channels == 1 else (6, 9, channels)


@pytest.mark.parametrize(("format", "dtype", "channels"), METADATA_CASES)
def test_exif_and_icc_survive(
    make_exif, make_pixels, srgb_profile: bytes, format: str, dtype: type, channels: int
) -> None:
    data = encode_image(
        make_pixels(_shape(channels), dtype),
        format,
        exif=make_exif(orientation=1),
        icc_profile=srgb_profile,
    )

    # Pillow, an independent reader, sees the metadata.
    with Image.open(io.BytesIO(data)) as image:
        assert image.format.lower() == format
        assert image.info.get("icc_profile") == srgb_profile
        exif = image.getexif()
        assert exif[0x010F] == "AmpCam"
        assert exif[0x0112] == 1
        assert exif.get_ifd(0x8769)[0x9003] == "2019:05:06 07:08:09"


@pytest.mark.parametrize(("format", "dtype", "channels"), METADATA_CASES)
def test_read_image_round_trip(
    tmp_path, make_exif, make_pixels, srgb_profile: bytes, format: str, dtype: type, channels: int
) -> None:
    pixels = make_pixels(_shape(channels), dtype)
    path = tmp_path / f"out.{format}"
    path.write_bytes(encode_image(pixels, format, exif=make_exif(), icc_profile=srgb_profile))

    decoded = read_image(path)

    assert decoded.icc_profile == srgb_profile
    assert decoded.taken_at is not None and decoded.taken_at.year == 2019
    assert decoded.format == format
    if format in ("png", "tiff"):  # lossless, depth kept
        assert decoded.pixels.dtype == dtype
        np.testing.assert_array_equal(decoded.pixels, pixels)
    else:
        assert decoded.pixels.shape == pixels.shape


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_formats_match_independent_decoders(make_pixels, channels: int, dtype) -> None:
    pixels = make_pixels(_shape(channels), dtype)
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(encode_image(pixels, "tiff"))), pixels)
    png = cv2.imdecode(np.frombuffer(encode_image(pixels, "png"), np.uint8), cv2.IMREAD_UNCHANGED)
    if channels > 1:
        png = cv2.cvtColor(png, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGBA)
    np.testing.assert_array_equal(png, pixels)


def test_png_metadata_chunks_are_valid_and_before_idat(make_exif, srgb_profile: bytes) -> None:
    data = encode_image(
        np.zeros((2, 3, 3), np.uint16), "png", exif=make_exif(), icc_profile=srgb_profile
    )
    kinds = []
    position = 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind, payload = (
            data[position + 4 : position + 8],
            data[position + 8 : position + 8 + length],
        )
        (crc,) = struct.unpack_from(">I", data, position + 8 + length)
        assert crc == zlib.crc32(kind + payload), kind
        if kind == b"eXIf":
            assert payload[:4] in (b"II*\x00", b"MM\x00*")  # bare TIFF, no Exif header
        if kind == b"iCCP":
            name, rest = payload.split(b"\x00", 1)
            assert rest[0] == 0 and zlib.decompress(rest[1:]) == srgb_profile
        kinds.append(kind)
        position += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT")
    assert kinds.index(b"eXIf") < kinds.index(b"IDAT")
    assert b"sRGB" not in kinds


def test_exif_without_header_is_accepted(make_exif) -> None:
    bare = make_exif()[len(b"Exif\x00\x00") :]
    for format in ("jpeg", "png", "webp", "tiff"):
        data = encode_image(np.zeros((2, 3, 3), np.uint8), format, exif=bare)
        with Image.open(io.BytesIO(data)) as image:
            assert image.getexif()[0x010F] == "AmpCam", format


def test_16_bit_to_8_bit_rounds() -> None:
    pixels = np.array([0, 128, 129, 257, 385, 386, 65535], np.uint16)
    np.testing.assert_array_equal(to_uint8(pixels), [0, 0, 1, 1, 1, 2, 255])


def test_16_bit_jpeg_is_rounded_to_8_bit() -> None:
    pixels = np.full((8, 8, 3), 257 * 200, np.uint16)
    with Image.open(io.BytesIO(encode_image(pixels, "jpeg"))) as image:
        assert np.abs(np.asarray(image).astype(int) - 200).max() <= 1


@pytest.mark.parametrize(("quality", "sampling"), [(95, 0), (90, 0), (80, 2)])
def test_jpeg_chroma_subsampling_follows_quality(quality: int, sampling: int) -> None:
    data = encode_image(np.zeros((16, 16, 3), np.uint8), "jpeg", quality=quality)
    with Image.open(io.BytesIO(data)) as image:
        assert JpegImagePlugin.get_sampling(image) == sampling


def test_jpeg_quality_changes_size(make_pixels) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_image(pixels, "jpeg", quality=30)) < len(encode_image(pixels, "jpeg"))


def test_jpeg_refuses_alpha() -> None:
    with pytest.raises(OptionError, match="png, tiff or webp"):
        encode_image(np.zeros((2, 2, 4), np.uint8), "jpeg")


@pytest.mark.parametrize("quality", [0, 101, -5])
def test_quality_out_of_range(quality: int) -> None:
    with pytest.raises(OptionError, match="quality"):
        encode_image(np.zeros((2, 2, 3), np.uint8), "jpeg", quality=quality)


@pytest.mark.parametrize("format", ["gif", "jpg", "JPEG", ""])
def test_unknown_format(format: str) -> None:
    with pytest.raises(OptionError, match="jpeg, png, tiff, webp, bmp"):
        encode_image(np.zeros((2, 2, 3), np.uint8), format)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((2, 2, 3), np.float32), np.zeros((2, 2, 2), np.uint8), np.zeros((0, 2), np.uint8)],
)
def test_malformed_pixels_are_a_bug(pixels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_image(pixels, "png")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_bmp_round_trip(tmp_path, make_pixels, channels: int) -> None:
    pixels = make_pixels(_shape(channels))
    path = tmp_path / "out.bmp"
    path.write_bytes(encode_image(pixels, "bmp", exif=b"ignored", icc_profile=b"ignored"))
    decoded = read_image(path)
    assert decoded.format == "bmp"
    with Image.open(path) as image:
        expected = np.asarray(image)
    np.testing.assert_array_equal(decoded.pixels, expected)
    np.testing.assert_array_equal(
        decoded.pixels[..., :3] if channels == 4 else decoded.pixels,
        pixels[..., :3] if channels == 4 else pixels,
    )
