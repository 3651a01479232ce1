"""Immich's response shapes that AMP reads, as typed in its OpenAPI document (SDK 2.4 and 3.2).

Field names follow Python; the wire names are Immich's camelCase. Unknown fields are ignored,
so newer servers that add fields still parse; fields a version lacks have defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ImmichModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ServerVersion(ImmichModel):
    major: int
    minor: int
    patch: int
    prerelease: int | None = None

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class Person(ImmichModel):
    id: str
    name: str = ""  # "" until a user names the person
    is_hidden: bool = False
    birth_date: str | None = None
    thumbnail_path: str = ""


class PeoplePage(ImmichModel):
    people: list[Person]
    total: int
    hidden: int = 0
    has_next_page: bool | None = None  # absent before v1.110


class AssetFace(ImmichModel):
    """A face as Immich stores it: the box is in pixels of the preview Immich detected on
    (`image_width` x `image_height`: the upright image, shorter side 1440, never enlarged)."""

    id: str
    bounding_box_x1: int
    bounding_box_y1: int
    bounding_box_x2: int
    bounding_box_y2: int
    image_width: int
    image_height: int
    person: Person | None = None
    source_type: str | None = None  # machine-learning | exif | manual

    @property
    def box_xyxy(self) -> tuple[float, float, float, float]:
        return (
            float(self.bounding_box_x1),
            float(self.bounding_box_y1),
            float(self.bounding_box_x2),
            float(self.bounding_box_y2),
        )


class ExifInfo(ImmichModel):
    exif_image_width: int | None = None  # of the stored original, before orientation
    exif_image_height: int | None = None
    orientation: str | None = None  # EXIF orientation as a string, e.g. "6"
    date_time_original: str | None = None
    file_size_in_byte: int | None = None


class Asset(ImmichModel):
    id: str
    type: str = "IMAGE"
    checksum: str  # base64 of the original's SHA-1
    original_file_name: str = ""
    original_path: str = ""
    exif_info: ExifInfo | None = None


class AssetPage(ImmichModel):
    """`assets` of POST /search/metadata."""

    items: list[Asset]
    total: int = 0
    count: int = 0
    next_page: str | None = None
    next_cursor: str | None = None  # v3


class UploadResult(ImmichModel):
    id: str
    status: str  # created | duplicate | replaced


class MergeResult(ImmichModel):
    id: str
    success: bool
    error: str | None = None
    error_message: str | None = None  # v3.2 explains a failure here
