"""Tags for `output_metadata.tags`, derived only from what AMP measured: the faces it found.

- `people` when there is at least one face; confidence: the highest detection score.
- `portrait` when there is exactly one face and it covers at least 4 % of the photo;
  confidence: its detection score x min(1, face area share / 10 %) (a face filling a tenth of
  the frame or more is a full-confidence portrait).
- `group` when there are three faces or more; confidence: the mean detection score of the
  three most confident faces.

No tag is a guess about content AMP did not analyse (scenery, objects, events).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.faces.types import DetectedFace

PORTRAIT_MIN_SHARE = 0.04
PORTRAIT_FULL_SHARE = 0.10
GROUP_MIN_FACES = 3


def face_tags(faces: Sequence[DetectedFace], width: int, height: int) -> list[dict[str, object]]:
    if not faces:
        return []
    tags: list[dict[str, object]] = [
        {"tag": "people", "confidence": round(max(f.score for f in faces), 4)}
    ]
    if len(faces) == 1:
        face = faces[0]
        x1, y1, x2, y2 = face.box_xyxy
        share = max(0.0, x2 - x1) * max(0.0, y2 - y1) / float(width * height)
        if share >= PORTRAIT_MIN_SHARE:
            confidence = face.score * min(1.0, share / PORTRAIT_FULL_SHARE)
            tags.append({"tag": "portrait", "confidence": round(confidence, 4)})
    if len(faces) >= GROUP_MIN_FACES:
        top = sorted((f.score for f in faces), reverse=True)[:GROUP_MIN_FACES]
        tags.append({"tag": "group", "confidence": round(sum(top) / len(top), 4)})
    return tags
