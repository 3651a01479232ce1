"""The cross-check as one self-contained HTML page: inline CSS and script, face crops inlined
as data URIs, nothing fetched from the network.

Every string that reaches the page passes through `html.escape` (names and ids come from
Immich's users); ids in links are also percent-encoded. Crops are looked up by the keys of
`findings.crop_key` (`immich:<face id>`, `amp:<face id>`); `required_crops` lists the ones a
report shows, with the asset and box to cut each from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import quote

from engine.immich.findings import (
    FINDING_KINDS,
    FaceRef,
    Finding,
    FindingKind,
    PersonIn,
    ReconcileReport,
)
from engine.immich.geometry import BoxXyxy

KIND_LABELS: dict[FindingKind, str] = {
    "missed_by_immich": "Missed by Immich",
    "only_in_immich": "Only in Immich",
    "reassign_face": "Reassign face",
    "merge_people": "Merge people",
    "split_person": "Split person",
    "duplicate_in_photo": "Twice in one photo",
    "unnamed_matches_named": "Unnamed matches named",
}

ROLE_LABELS = {
    "face": "this face",
    "person": "person",
    "suggested": "suggested",
    "other": "other person",
}

_MAX_ASSET_LINKS = 4  # per finding; a merge can span hundreds of photos


def required_crops(report: ReconcileReport) -> dict[str, tuple[str, BoxXyxy]]:
    """Crop key -> (asset id, box in upright original pixels) for every face the page shows."""
    return {face.key: (face.asset_id, face.box_xyxy) for f in report.findings for face in f.faces}


def render_report(
    report: ReconcileReport,
    crops: Mapping[str, str],
    *,
    immich_web_url: str,
    title: str = "AMP cross-check of Immich's faces",
) -> str:
    """The page. `crops` maps crop keys to `data:image/...` URIs; a face without one shows a
    placeholder. `immich_web_url` is the web UI's base (http or https), used for links to
    `/photos/<asset id>` and `/people/<person id>`."""
    base = immich_web_url.rstrip("/")
    if not base.lower().startswith(("http://", "https://")):
        raise ValueError(f"immich_web_url must be an http(s) URL, got {immich_web_url!r}")
    links = _Links(base, {p.person_id: p for p in report.people})
    body = [
        f"<h1>{escape(title)}</h1>",
        _subtitle(report),
        _summary(report),
        _findings_table(report, crops, links),
        _cohesion_table(report, links),
    ]
    return _PAGE.format(title=escape(title), css=_CSS, body="\n".join(body), script=_SCRIPT)


class _Links:
    def __init__(self, base: str, people: dict[str, PersonIn]) -> None:
        self.base = base
        self.people = people

    def label(self, person_id: str) -> str:
        person = self.people.get(person_id)
        return person.label if person else f"person {person_id[:8]}"

    def person(self, person_id: str) -> str:
        url = f"{self.base}/people/{quote(person_id, safe='')}"
        named = bool(self.people.get(person_id, PersonIn(person_id)).name)
        css = "person" if named else "person unnamed"
        return (
            f'<a class="{css}" href="{escape(url)}" target="_blank" rel="noopener">'
            f"{escape(self.label(person_id))}</a>"
        )

    def asset(self, asset_id: str) -> str:
        url = f"{self.base}/photos/{quote(asset_id, safe='')}"
        return (
            f'<a class="asset" href="{escape(url)}" target="_blank" rel="noopener" '
            f'title="{escape(asset_id)}">{escape(_short(asset_id))}</a>'
        )


def _short(identifier: str, keep: int = 18) -> str:
    return identifier if len(identifier) <= keep else identifier[: keep - 1] + "\u2026"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "\u2013" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.1f}%"


def _subtitle(report: ReconcileReport) -> str:
    t = report.thresholds
    recognizer = report.recognizer or "unknown recognizer"
    return (
        f'<p class="sub">Embeddings: <code>{escape(recognizer)}</code> &middot; same person '
        f"below cosine distance <b>{t.max_distance:g}</b> (similarity &ge; "
        f"{t.min_similarity:.2f}) &middot; boxes match at IoU &ge; {t.min_iou:g} &middot; "
        f"{len(report.assets)} photos, {len(report.people)} people</p>"
    )


def _card(label: str, value: str, note: str = "") -> str:
    note_html = f'<div class="note">{escape(note)}</div>' if note else ""
    return (
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div>{note_html}</div>'
    )


def _summary(report: ReconcileReport) -> str:
    s = report.summary
    d = s.detection
    cards = [
        _card(
            "Detection precision",
            _pct(d.precision),
            f"{d.matched_ml} of Immich's {d.immich_ml_faces} detected faces confirmed by AMP",
        ),
        _card(
            "Detection recall",
            _pct(d.recall),
            f"{d.matched} of AMP's {d.amp_faces} faces also in Immich",
        ),
        _card("Mean box IoU", _fmt(d.mean_iou, 2), "of the matched faces"),
        _card(
            "Identity agreement",
            _pct(s.identity_agreement_rate),
            f"{s.identity_agreed} of {s.identity_evaluated} faces closest to their own person",
        ),
    ]
    counts = "".join(
        f'<button type="button" class="chip kind-{escape(kind)}" data-kind="{escape(kind)}">'
        f"{escape(KIND_LABELS[kind])} <b>{s.findings_by_kind.get(kind, 0)}</b></button>"
        for kind in FINDING_KINDS
    )
    return (
        f'<section class="summary">{"".join(cards)}</section>'
        f'<section class="chips"><button type="button" class="chip active" data-kind="">'
        f"All findings <b>{len(report.findings)}</b></button>{counts}</section>"
    )


def _face(face: FaceRef, crops: Mapping[str, str], links: _Links) -> str:
    uri = crops.get(face.key, "")
    if uri.startswith("data:image/"):
        picture = f'<img src="{escape(uri)}" alt="{escape(face.key)}" loading="lazy">'
    else:
        picture = '<div class="nocrop">no crop</div>'
    role = ROLE_LABELS.get(face.role, face.role)
    who = escape(links.label(face.person_id)) if face.person_id else ""
    sim = f'<span class="sim">{_fmt(face.similarity)}</span>' if face.similarity is not None else ""
    return (
        f'<figure class="face role-{escape(face.role.split()[0])}">{picture}'
        f'<figcaption><span class="role">{escape(role)}</span>{who}{sim}</figcaption></figure>'
    )


def _assets(asset_ids: Sequence[str], links: _Links) -> str:
    shown = [links.asset(a) for a in asset_ids[:_MAX_ASSET_LINKS]]
    more = len(asset_ids) - _MAX_ASSET_LINKS
    if more > 0:
        shown.append(f'<span class="more">+{more} more</span>')
    return "<br>".join(shown)


def _similarities(finding: Finding) -> str:
    if not finding.similarities:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{value:.3f}</td></tr>"
        for name, value in finding.similarities.items()
    )
    return f'<details><summary>figures</summary><table class="figs">{rows}</table></details>'


def _finding_row(n: int, finding: Finding, crops: Mapping[str, str], links: _Links) -> str:
    kind = escape(finding.kind)
    people = " ".join(links.person(p) for p in finding.person_ids)
    first_person = links.label(finding.person_ids[0]) if finding.person_ids else ""
    similarity = finding.similarity
    faces = "".join(_face(face, crops, links) for face in finding.faces)
    return (
        f'<tr data-kind="{kind}">'
        f'<td data-sort="{n}">{n}</td>'
        f'<td data-sort="{kind}"><span class="tag kind-{kind}">'
        f"{escape(KIND_LABELS[finding.kind])}</span></td>"
        f'<td class="faces">{faces}</td>'
        f'<td class="msg">{escape(finding.message)}{_similarities(finding)}</td>'
        f'<td data-sort="{escape(first_person.lower())}">{people}</td>'
        f'<td class="num" data-sort="{"" if similarity is None else f"{similarity:.6f}"}">'
        f"{_fmt(similarity)}</td>"
        f'<td data-sort="{escape(finding.asset_ids[0] if finding.asset_ids else "")}">'
        f"{_assets(finding.asset_ids, links)}</td></tr>"
    )


def _findings_table(report: ReconcileReport, crops: Mapping[str, str], links: _Links) -> str:
    if not report.findings:
        return '<h2>Findings</h2><p class="empty">No findings: Immich and AMP agree.</p>'
    rows = "\n".join(
        _finding_row(n, f, crops, links) for n, f in enumerate(report.findings, start=1)
    )
    return (
        '<h2>Findings</h2><table class="sortable findings" id="findings"><thead><tr>'
        '<th data-type="num">#</th><th data-type="text">Kind</th><th>Faces</th>'
        '<th>Finding</th><th data-type="text">People</th>'
        '<th data-type="num">Similarity</th><th data-type="text">Photo</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _cohesion_table(report: ReconcileReport, links: _Links) -> str:
    rows = []
    for c in report.summary.cohesion:
        label = links.label(c.person_id)
        mean = "" if c.mean_similarity is None else f"{c.mean_similarity:.6f}"
        weakest = "" if c.min_face_similarity is None else f"{c.min_face_similarity:.6f}"
        rows.append(
            f'<tr><td data-sort="{escape(label.lower())}">{links.person(c.person_id)}</td>'
            f'<td class="num" data-sort="{c.faces}">{c.faces}</td>'
            f'<td class="num" data-sort="{c.embedded_faces}">{c.embedded_faces}</td>'
            f'<td class="num" data-sort="{mean}">{_fmt(c.mean_similarity)}</td>'
            f'<td class="num" data-sort="{weakest}">{_fmt(c.min_face_similarity)}</td></tr>'
        )
    return (
        '<h2>People</h2><p class="sub">Cohesion: mean similarity over all pairs of a '
        "person's faces; weakest: the lowest mean similarity of one face to the others.</p>"
        '<table class="sortable cohesion"><thead><tr><th data-type="text">Person</th>'
        '<th data-type="num">Faces</th><th data-type="num">Embedded</th>'
        '<th data-type="num">Cohesion</th><th data-type="num">Weakest face</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title><style>{css}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""

_CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f7f8fa; --accent:#4250af; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); margin: 0; padding: 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: var(--muted); margin: 0 0 12px; } code { font-size: 12px; }
.summary { display: flex; gap: 12px; flex-wrap: wrap; margin: 12px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 16px; min-width: 210px; flex: 1; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; }
.card .value { font-size: 26px; font-weight: 600; }
.card .note { color: var(--muted); font-size: 12px; }
.chips { display: flex; gap: 6px; flex-wrap: wrap; margin: 8px 0; }
.chip { border: 1px solid var(--line); background: #fff; border-radius: 14px;
  padding: 3px 10px; font: inherit; cursor: pointer; }
.chip.active { border-color: var(--accent); box-shadow: 0 0 0 1px var(--accent) inset; }
table { border-collapse: collapse; background: #fff; width: 100%;
  border: 1px solid var(--line); }
th, td { padding: 8px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: #eef0f4; font-weight: 600; white-space: nowrap; position: sticky; top: 0; }
th[data-type] { cursor: pointer; user-select: none; }
th[data-type]::after { content: " \\2195"; color: #98a2b3; }
th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--accent); }
th[aria-sort="descending"]::after { content: " \\2193"; color: var(--accent); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.msg { max-width: 420px; }
td.faces { white-space: nowrap; }
.face { display: inline-block; margin: 0 6px 0 0; text-align: center; width: 96px;
  vertical-align: top; }
.face img, .nocrop { width: 96px; height: 96px; border-radius: 6px; display: block;
  border: 2px solid var(--line); object-fit: cover; }
.nocrop { background: #eceff3; color: var(--muted); font-size: 11px; line-height: 92px; }
.face.role-face img { border-color: #d92d20; }
.face.role-suggested img { border-color: #12b76a; }
.face figcaption { font-size: 11px; color: var(--muted); white-space: normal;
  overflow-wrap: anywhere; }
.face .role { display: block; text-transform: uppercase; letter-spacing: .03em;
  font-size: 10px; }
.face .sim { display: block; color: var(--fg); font-variant-numeric: tabular-nums; }
.tag { display: inline-block; border-radius: 4px; padding: 1px 6px; font-size: 12px;
  background: #eef0f4; white-space: nowrap; }
.kind-missed_by_immich { background: #fef0c7; } .kind-only_in_immich { background: #fde2e1; }
.kind-reassign_face { background: #dbe7ff; } .kind-merge_people { background: #d1fadf; }
.kind-split_person { background: #f4ebff; } .kind-duplicate_in_photo { background: #ffe4d5; }
.kind-unnamed_matches_named { background: #cff9fe; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
a.person { display: inline-block; margin: 0 6px 2px 0; }
a.person.unnamed { font-style: italic; }
.more { color: var(--muted); font-size: 12px; }
details summary { color: var(--muted); cursor: pointer; font-size: 12px; margin-top: 4px; }
table.figs { width: auto; border: 0; margin-top: 4px; }
table.figs td { padding: 1px 8px 1px 0; border: 0; font-size: 12px; }
.empty { background: #fff; border: 1px solid var(--line); padding: 16px; border-radius: 8px; }
"""

# Sorting reads each cell's data-sort (numbers when the header says so, empty last); the
# kind chips filter the findings table. Rows are only reordered or hidden, never rebuilt,
# so no string from the report is ever parsed as HTML here.
_SCRIPT = """
(function () {
  function key(cell, numeric) {
    var v = cell ? cell.getAttribute('data-sort') : null;
    if (v === null) v = cell ? cell.textContent.trim() : '';
    if (!numeric) return v.toLowerCase();
    return v === '' ? null : parseFloat(v);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      if (!th.hasAttribute('data-type')) return;
      th.addEventListener('click', function () {
        var numeric = th.getAttribute('data-type') === 'num';
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
          if (x === y) return 0;
          if (x === null) return 1;
          if (y === null) return -1;
          return (x < y ? -1 : 1) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  var findings = document.getElementById('findings');
  document.querySelectorAll('.chip').forEach(function (chip) {
    chip.addEventListener('click', function () {
      var kind = chip.getAttribute('data-kind');
      document.querySelectorAll('.chip').forEach(function (c) {
        c.classList.toggle('active', c === chip);
      });
      if (!findings) return;
      Array.prototype.forEach.call(findings.tBodies[0].rows, function (r) {
        r.style.display = !kind || r.getAttribute('data-kind') === kind ? '' : 'none';
      });
    });
  });
})();
"""
