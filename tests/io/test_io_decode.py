from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from engine.errors import ImageReadError, ImageTooLargeError
from engine.io.decode import DEFAULT_MAX_PIXELS, read_image

FORMAT_OPTIONS = {
    "png": {},
    "tiff": {},
    "webp": {"lossless": True},
    "jpeg": {"quality": 100, "subsampling": 0},
}


def _save(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _pillow_upright(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("format", list(FORMAT_OPTIONS))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(
    write, make_exif, make_pixels, format: str, orientation: int
) -> None:
    source = Image.fromarray(make_pixels((24, 40, 3)))
    data = _save(source, format, exif=make_exif(orientation), **FORMAT_OPTIONS[format])
    path = write(f"o{orientation}.{format}", data)

    decoded = read_image(path)

    expected = _pillow_upright(path)
    assert decoded.pixels.shape == expected.shape
    # JPEG: libjpeg-turbo (OpenCV) and Pillow's libjpeg may round the IDCT differently.
    tolerance = 3 if format == "jpeg" else 0
    np.testing.assert_allclose(decoded.pixels, expected, atol=tolerance, rtol=0)
    assert decoded.format == format
    assert decoded.source_bytes == len(data)


@pytest.mark.parametrize("format", list(FORMAT_OPTIONS))
def test_exif_orientation_reset_and_capture_time(write, make_exif, format: str) -> None:
    data = _save(
        Image.new("RGB", (8, 4), "red"), format, exif=make_exif(6), **FORMAT_OPTIONS[format]
    )
    decoded = read_image(write(f"x.{format}", data))

    assert decoded.exif is not None and decoded.exif.startswith(b"Exif\x00\x00")
    exif = Image.Exif()
    exif.load(decoded.exif)
    assert exif[0x0112] == 1
    assert exif[0x010F] == "AmpCam"
    assert exif.get_ifd(0x8769)[0x9003] == "2019:05:06 07:08:09"
    assert decoded.taken_at is not None and decoded.taken_at.isoformat() == "2019-05-06T07:08:09"
    assert (decoded.width, decoded.height) == (4, 8)  # turned upright


def test_no_metadata_gives_none(write) -> None:
    decoded = read_image(write("plain.png", _save(Image.new("RGB", (3, 2)), "PNG")))
    assert (decoded.exif, decoded.icc_profile, decoded.taken_at) == (None, None, None)


def test_taken_at_falls_back_to_datetime(write) -> None:
    exif = Image.Exif()
    exif[0x0132] = "2001:02:03 04:05:06"
    decoded = read_image(write("d.jpg", _save(Image.new("RGB", (3, 2)), "JPEG", exif=exif)))
    assert decoded.taken_at is not None and decoded.taken_at.year == 2001


def test_icc_profile_is_read(write, srgb_profile: bytes) -> None:
    data = _save(Image.new("RGB", (3, 2)), "JPEG", icc_profile=srgb_profile)
    assert read_image(write("icc.jpg", data)).icc_profile == srgb_profile


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (5, 7, 4)])
def test_16_bit_png_keeps_exact_values(write, make_pixels, shape: tuple[int, ...]) -> None:
    pixels = make_pixels(shape, np.uint16)
    assert pixels.max() > 255
    stored = pixels if len(shape) == 2 else pixels[..., [2, 1, 0, 3][: shape[2]]]  # BGR(A)
    ok, png = cv2.imencode(".png", stored)
    assert ok

    decoded = read_image(write("deep.png", png.tobytes()))

    assert decoded.pixels.dtype == np.uint16 and decoded.bit_depth == 16
    assert decoded.channels == (1 if len(shape) == 2 else shape[2])
    np.testing.assert_array_equal(decoded.pixels, pixels)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (5, 7, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_keeps_exact_values(write, make_pixels, shape: tuple[int, ...], dtype: type) -> None:
    # Unassociated alpha: OpenCV's 8-bit path would premultiply it.
    pixels = make_pixels(shape, dtype)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels, photometric="minisblack" if len(shape) == 2 else "rgb")

    decoded = read_image(write("t.tif", buffer.getvalue()))

    assert decoded.pixels.dtype == dtype
    np.testing.assert_array_equal(decoded.pixels, pixels)


@pytest.mark.parametrize(
    ("mode", "options", "expected_mode"),
    [
        ("L", {}, "L"),
        ("1", {}, "L"),
        ("P", {}, "RGB"),
        ("P", {"transparency": 0}, "RGBA"),
        ("LA", {}, "RGBA"),
        ("RGBA", {}, "RGBA"),
    ],
)
def test_png_modes_become_gray_rgb_or_rgba(
    write, make_pixels, mode: str, options: dict, expected_mode: str
) -> None:
    channels = 4 if mode.endswith("A") else 3
    source = Image.fromarray(make_pixels((6, 9, channels))).convert(mode)
    path = write("m.png", _save(source, "PNG", **options))

    decoded = read_image(path)

    with Image.open(path) as reference:
        expected = np.asarray(reference.convert(expected_mode))
    assert decoded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(decoded.pixels, expected)


@pytest.mark.parametrize(("format", "tolerance"), [("JPEG", 2), ("TIFF", 0)])
def test_cmyk_becomes_rgb(write, make_pixels, format: str, tolerance: int) -> None:
    path = write("c.img", _save(Image.fromarray(make_pixels()).convert("CMYK"), format))
    decoded = read_image(path)
    with Image.open(path) as reference:
        expected = np.asarray(reference.convert("RGB"))
    assert decoded.channels == 3
    np.testing.assert_allclose(decoded.pixels, expected, atol=tolerance, rtol=0)


def test_gray_alpha_tiff_keeps_alpha(write) -> None:
    source = Image.fromarray(np.array([[[10, 255], [200, 40]]], np.uint8), "LA")
    decoded = read_image(write("la.tif", _save(source, "TIFF")))
    np.testing.assert_array_equal(decoded.pixels, [[[10, 10, 10, 255], [200, 200, 200, 40]]])


def test_gray_jpeg_photo_from_shared(faces_dir: Path) -> None:
    path = faces_dir / "_groups" / "solvay_conference_1927.jpg"
    decoded = read_image(path)
    with Image.open(path) as reference:
        expected = np.asarray(reference)
    assert decoded.pixels.ndim == 2 and decoded.format == "jpeg"
    assert np.abs(decoded.pixels.astype(int) - expected).max() <= 2


def test_float_tiff_is_refused(write) -> None:
    data = _save(Image.fromarray(np.full((3, 4), 0.5, np.float32)), "TIFF")
    with pytest.raises(ImageReadError, match="not supported"):
        read_image(write("f.tif", data))


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_pixel_limit_is_checked_before_decoding(write, monkeypatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("pixels decoded despite the limit")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    with pytest.raises(ImageTooLargeError) as caught:
        read_image(write("big.png", _png_header_only(100, 50)), max_pixels=4999)
    assert (caught.value.pixels, caught.value.limit) == (5000, 4999)
    with pytest.raises(ImageTooLargeError):
        read_image(write("bomb.png", _png_header_only(50_000, 50_000)))


@pytest.mark.parametrize("side", [10_000, 15_000])  # Pillow warns above 89 MP, fails above 179 MP
def test_pillow_bomb_check_does_not_preempt_amp_limit(write, monkeypatch, side: int) -> None:
    assert side * side <= DEFAULT_MAX_PIXELS
    monkeypatch.setattr(cv2, "imdecode", lambda data, flags: np.zeros((2, 3), np.uint8))
    decoded = read_image(write("huge.png", _png_header_only(side, side)))
    assert decoded.pixels.shape == (2, 3)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "absent.jpg")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_empty_file(write) -> None:
    with pytest.raises(ImageReadError, match="empty"):
        read_image(write("empty.jpg", b""))


def test_text_renamed_to_jpg(write) -> None:
    with pytest.raises(ImageReadError, match="not a JPEG, PNG"):
        read_image(write("notes.jpg", b"shopping list: milk, eggs\n"))


def test_unsupported_format(write) -> None:
    gif = _save(Image.new("P", (4, 4)), "GIF")
    with pytest.raises(ImageReadError, match="not a JPEG, PNG"):
        read_image(write("anim.gif", gif))


@pytest.mark.parametrize("format", ["JPEG", "PNG", "TIFF", "WEBP", "BMP"])
def test_truncated_file(write, make_pixels, format: str) -> None:
    data = _save(Image.fromarray(make_pixels((64, 64, 3))), format)
    with pytest.raises(ImageReadError):
        read_image(write("cut.img", data[: len(data) // 2]))


@pytest.mark.parametrize("format", ["JPEG", "PNG", "TIFF", "WEBP", "BMP"])
def test_damaged_bytes_raise_only_image_read_error(write, make_exif, format: str) -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    options = {} if format == "BMP" else {"exif": make_exif(3)}
    data = np.frombuffer(_save(Image.fromarray(pixels), format, **options), np.uint8)
    for trial in range(40):
        damaged = data.copy()
        spots = rng.integers(2, len(data), 1 + trial % 8)
        damaged[spots] = rng.integers(0, 256, len(spots))
        try:
            read_image(write(f"bad{trial}.img", damaged.tobytes()))
        except ImageReadError:
            pass


def test_probe_reads_format_and_capture_time_without_pixels(tmp_path: Path) -> None:
    from datetime import datetime

    from engine.io.decode import probe_image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2021:02:03 04:05:06"
    path = tmp_path / "dated.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, exif=exif)
    data = path.read_bytes()
    # Pixels cut off: a full decode fails, the header is still readable.
    path.write_bytes(data[: len(data) // 2])
    info = probe_image(path)
    assert info.format == "jpeg"
    assert info.taken_at == datetime(2021, 2, 3, 4, 5, 6)
    with pytest.raises(ImageReadError):
        read_image(path)

    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    for bad in (text, tmp_path / "missing.jpg", tmp_path):
        with pytest.raises(ImageReadError):
            probe_image(bad)
