"""Building the cmi5 course zip: ``cmi5.xml`` (one AU for the module) and the AU, which is the SCORM
activity's page reporting through the cmi5 client (``cmi5.js`` over @xapi/cmi5) instead of ``API_1484_11``."""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from trm_modules.errors import TRMError
from trm_modules.views import DEFAULT_VIEWS

from trm_adapters.scorm.export import activity_document, activity_members, write_member
from trm_adapters.scorm.vendor import (
    CMI5_DIST_FILES,
    CMI5_VERSION,
    ONNXRUNTIME_WEB_VERSION,
    vendor_cmi5,
    vendor_onnxruntime_web,
)

#: Share of the puzzle's blank cells the learner must earn (cells the module filled earn nothing) to pass.
MASTERY_SCORE = 0.8
#: The AU is satisfied when the learner passes: the score is the point of the activity, completion alone is not.
MOVE_ON = "Passed"
#: What the AU page loads instead of scorm.js.
SCORM_REPORTER_TAG = '<script src="scorm.js" defer></script>'
CMI5_REPORTER_TAGS = '<script src="vendor/Cmi5.umd.js" defer></script>\n  <script src="cmi5.js" defer></script>'


class Cmi5ExportError(TRMError):
    """The module cannot be exported as a cmi5 course."""


@dataclass(frozen=True)
class Cmi5Report:
    """What ``export_cmi5`` wrote."""

    path: Path
    size: int
    puzzles: int
    course_id: str
    au_id: str
    files: tuple[str, ...]


def course_structure(
    *,
    course_id: str,
    au_id: str,
    title: str,
    description: str,
    url: str,
    move_on: str = MOVE_ON,
    mastery_score: float = MASTERY_SCORE,
) -> str:
    """``cmi5.xml``: one course, one AU (CourseStructure.xsd of cmi5, Quartz)."""

    def text(value: str) -> str:
        return f'<langstring lang="en-US">{escape(value)}</langstring>'

    return f"""<?xml version="1.0" encoding="utf-8"?>
<courseStructure xmlns="https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd">
  <course id={quoteattr(course_id)}>
    <title>{text(title)}</title>
    <description>{text(description)}</description>
  </course>
  <au id={quoteattr(au_id)} moveOn="{move_on}" masteryScore="{mastery_score}" launchMethod="AnyWindow">
    <title>{text(title)}</title>
    <description>{text(description)}</description>
    <url>{escape(url)}</url>
  </au>
</courseStructure>
"""


def export_cmi5(
    package: Any,
    out_path: str | os.PathLike[str],
    *,
    puzzles: int = 5,
    seed: int = 0,
    max_steps: int | None = None,
    npm_cache: Path | None = None,
    views: int = DEFAULT_VIEWS,
    mastery_score: float = MASTERY_SCORE,
) -> Cmi5Report:
    """Write the cmi5 course package of an opened ``package`` to ``out_path``."""
    from trm_modules.package.onnx_export import export_onnx_step

    if puzzles < 1:
        raise Cmi5ExportError(f"an AU needs at least one puzzle, got {puzzles}")
    if not 0.0 <= mastery_score <= 1.0:
        raise Cmi5ExportError(f"masteryScore must lie in [0, 1], got {mastery_score}")
    steps = max_steps or package.manifest.model.config.halt_max_steps
    document = activity_document(package, puzzles, seed, steps, views)
    ort_dist, _ = vendor_onnxruntime_web(npm_cache, ONNXRUNTIME_WEB_VERSION)
    cmi5_dist, _ = vendor_cmi5(npm_cache, CMI5_VERSION)
    manifest = package.manifest
    title = manifest.title or manifest.name
    description = (
        f"{title}: solve the puzzles; the reasoning module {manifest.name} {manifest.version} runs in "
        f"your browser. Pass: {mastery_score:.0%} of the cells by yourself (cells the module fills "
        f"count for the module)."
    )
    course_id = f"{manifest.module_id}:{manifest.version}:cmi5"
    au_id = f"{course_id}:au"
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trm-cmi5-") as tmp:
        onnx_path = export_onnx_step(package, Path(tmp) / "model.onnx")
        members = activity_members(document, onnx_path.read_bytes(), ort_dist)
        del members["scorm.js"]
        page = members["index.html"].decode()
        if SCORM_REPORTER_TAG not in page:
            raise Cmi5ExportError("the activity page no longer loads scorm.js where the cmi5 reporter replaces it")
        members["index.html"] = page.replace(SCORM_REPORTER_TAG, CMI5_REPORTER_TAGS).encode()
        members["cmi5.js"] = resources.files(__package__).joinpath("cmi5.js").read_bytes()
        for name in CMI5_DIST_FILES:
            members[f"vendor/{name}"] = (cmi5_dist / name).read_bytes()
        members["cmi5.xml"] = course_structure(
            course_id=course_id,
            au_id=au_id,
            title=title,
            description=description,
            url="index.html",
            mastery_score=mastery_score,
        ).encode()
        tmp_zip = out_path.with_name(out_path.name + ".tmp")
        with zipfile.ZipFile(tmp_zip, "w") as zf:
            for name in ["cmi5.xml", *sorted(n for n in members if n != "cmi5.xml")]:
                write_member(zf, name, members[name])
        os.replace(tmp_zip, out_path)
    return Cmi5Report(
        path=out_path,
        size=out_path.stat().st_size,
        puzzles=len(document["puzzles"]),
        course_id=course_id,
        au_id=au_id,
        files=tuple(["cmi5.xml", *sorted(n for n in members if n != "cmi5.xml")]),
    )
