"""Building the SCORM zip: manifest, activity files, puzzles, ONNX model, vendored onnxruntime-web."""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from trm_modules.boards import NoBoardView, board_document
from trm_modules.errors import TRMError
from trm_modules.views import DEFAULT_VIEWS, views_of

from .vendor import DIST_FILES, ONNXRUNTIME_WEB_VERSION, vendor_onnxruntime_web

#: The activity shared by the SCORM and cmi5 exports: the task's board (board.js), model, views and grading (activity.js),
#: each reporting through its own script (scorm.js here).
ACTIVITY_FILES = ("index.html", "board.js", "activity.js", "activity.css", "scorm.js")
#: The SCORM 2004 4th Edition schemas (ADL, unmodified; see schemas/README.md), shipped at the zip's root
#: as the Content Aggregation Model asks of every package.
SCHEMA_DIR = "schemas"
#: Zip timestamps are fixed so that one package and seed give identical bytes.
FIXED_ZIP_TIME = (2025, 1, 1, 0, 0, 0)


class ScormExportError(TRMError):
    """The module cannot be exported as a SCORM activity (task without a browser view, missing npm …)."""


@dataclass(frozen=True)
class ScormReport:
    """What ``export_scorm`` wrote."""

    path: Path
    size: int
    puzzles: int
    onnxruntime_web_version: str
    files: tuple[str, ...]


def grid_view(codec: Any, plugins: Any = None) -> dict[str, Any]:
    """How the browser shows and edits the task's token grid: the board its plugin describes through the
    ``trm_board_view`` hook (``trm_modules.boards``); ``ScormExportError`` naming the hook when none does."""
    try:
        return board_document(codec, plugins)
    except NoBoardView as exc:
        raise ScormExportError(str(exc)) from exc


def xml_id(text: str) -> str:
    """``text`` as an ``xs:ID`` (an XML NCName): characters outside the NCName set become ``-``, and a
    leading character that may not start one is prefixed with ``id-``."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", text)
    return name if re.match(r"[A-Za-z_]", name) else f"id-{name}"


def test_time_views(codec: Any, count: int) -> list[dict[str, list[int]]]:
    """The views the server tries when the rules reject an answer (``trm_modules.views.views_of``), as
    ``{"source", "lookup"}`` index lists, so the browser asks in exactly the same views."""
    return [{"source": view.source.tolist(), "lookup": view.lookup.tolist()} for view in views_of(codec, count)]


def activity_document(
    package: Any, puzzles: int, seed: int, max_steps: int, views: int = DEFAULT_VIEWS
) -> dict[str, Any]:
    """``activity.json``: the module, the board view, the test-time views (the identity alone when the board
    gives the page no rules to choose between views by), and the puzzles with their token encodings and
    solutions."""
    codec = package.codec()
    view = grid_view(codec)
    pairs = codec.generate(np.random.default_rng(seed), puzzles)
    items = []
    for index, (data_in, data_out) in enumerate(pairs):
        items.append(
            {
                "id": f"puzzle-{index + 1}",
                "input": data_in,
                "tokens": [int(t) for t in codec.encode_input(data_in)],
                "puzzle_id": int(codec.puzzle_id(data_in)),
                "solution_tokens": [int(t) for t in codec.encode_output(data_out, data_in)],
            }
        )
    manifest = package.manifest
    config = manifest.model.config
    return {
        "module": manifest.name,
        "version": manifest.version,
        "module_id": manifest.module_id,
        "title": manifest.title,
        "digest": package.digest,
        "codec": codec.name,
        "params": codec.params,
        "seq_len": codec.seq_len,
        "steps": max_steps,
        "view": view,
        "carry_shape": [config.puzzle_len + config.seq_len, config.hidden_size],
        "views": test_time_views(codec, views if view["rules"] else 1),
        "puzzles": items,
    }


def scorm_manifest(identifier: str, title: str, description: str, version: str, files: list[str]) -> str:
    """``imsmanifest.xml`` of a one-SCO SCORM 2004 4th-edition package (LOM metadata inline). ``identifier``
    (a URI) is the LOM identifier; the manifest's own ``xs:ID`` is derived from it."""
    file_list = "\n".join(f'      <file href="{escape(name)}"/>' for name in files)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="{xml_id(identifier)}" version="{escape(version)}"
    xmlns="http://www.imsglobal.org/xsd/imscp_v1p1"
    xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_v1p3"
    xmlns:adlseq="http://www.adlnet.org/xsd/adlseq_v1p3"
    xmlns:adlnav="http://www.adlnet.org/xsd/adlnav_v1p3"
    xmlns:imsss="http://www.imsglobal.org/xsd/imsss"
    xmlns:lom="http://ltsc.ieee.org/xsd/LOM"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://www.imsglobal.org/xsd/imscp_v1p1 imscp_v1p1.xsd
                        http://www.adlnet.org/xsd/adlcp_v1p3 adlcp_v1p3.xsd
                        http://www.adlnet.org/xsd/adlseq_v1p3 adlseq_v1p3.xsd
                        http://www.adlnet.org/xsd/adlnav_v1p3 adlnav_v1p3.xsd
                        http://www.imsglobal.org/xsd/imsss imsss_v1p0.xsd
                        http://ltsc.ieee.org/xsd/LOM lom.xsd">
  <metadata>
    <schema>ADL SCORM</schema>
    <schemaversion>2004 4th Edition</schemaversion>
    <lom:lom>
      <lom:general>
        <lom:identifier><lom:catalog>URI</lom:catalog><lom:entry>{escape(identifier)}</lom:entry></lom:identifier>
        <lom:title><lom:string language="en">{escape(title)}</lom:string></lom:title>
        <lom:description><lom:string language="en">{escape(description)}</lom:string></lom:description>
      </lom:general>
      <lom:lifeCycle><lom:version><lom:string language="en">{escape(version)}</lom:string></lom:version></lom:lifeCycle>
      <lom:technical><lom:format>text/html</lom:format></lom:technical>
    </lom:lom>
  </metadata>
  <organizations default="organization">
    <organization identifier="organization" adlseq:objectivesGlobalToSystem="false">
      <title>{escape(title)}</title>
      <item identifier="item-activity" identifierref="resource-activity">
        <title>{escape(title)}</title>
        <adlcp:completionThreshold completedByMeasure="false" minProgressMeasure="1.0"/>
        <imsss:sequencing>
          <imsss:deliveryControls tracked="true" completionSetByContent="true" objectiveSetByContent="true"/>
        </imsss:sequencing>
      </item>
      <imsss:sequencing>
        <imsss:controlMode choice="true" flow="true"/>
      </imsss:sequencing>
    </organization>
  </organizations>
  <resources>
    <resource identifier="resource-activity" type="webcontent" adlcp:scormType="sco" href="index.html">
{file_list}
    </resource>
  </resources>
</manifest>
"""


def activity_members(document: dict[str, Any], onnx_model: bytes, ort_dist: Path) -> dict[str, bytes]:
    """The files of the browser activity, shared by the SCORM and cmi5 exports: pages and scripts,
    ``activity.json``, the step model and onnxruntime-web."""
    template = resources.files(__package__)
    members = {name: template.joinpath(name).read_bytes() for name in ACTIVITY_FILES}
    members["activity.json"] = json.dumps(document, indent=1).encode()
    members["model.onnx"] = onnx_model
    for name in DIST_FILES:
        members[f"vendor/{name}"] = (ort_dist / name).read_bytes()
    return members


def schema_members() -> dict[str, bytes]:
    """The ADL schema files, by their path in the package (``common/dataTypes.xsd`` …) and their notice."""
    root = resources.files(__package__).joinpath(SCHEMA_DIR)
    members: dict[str, bytes] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith((".xsd", ".dtd")):
                members[f"{prefix}{entry.name}"] = entry.read_bytes()
            elif entry.name == "README.md":
                members["schemas-NOTICE.md"] = entry.read_bytes()

    walk(root, "")
    return members


def write_member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Add ``name`` to ``zf`` deflated, with the fixed timestamp and 0644 permissions (reproducible zips)."""
    info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def export_scorm(
    package: Any,
    out_path: str | os.PathLike[str],
    *,
    puzzles: int = 5,
    seed: int = 0,
    max_steps: int | None = None,
    npm_cache: Path | None = None,
    onnxruntime_web_version: str = ONNXRUNTIME_WEB_VERSION,
    views: int = DEFAULT_VIEWS,
) -> ScormReport:
    """Write the SCORM 2004 package of an opened ``package`` to ``out_path``; see the package docstring."""
    from trm_modules.package.onnx_export import export_onnx_step

    if puzzles < 1:
        raise ScormExportError(f"an activity needs at least one puzzle, got {puzzles}")
    steps = max_steps or package.manifest.model.config.halt_max_steps
    document = activity_document(package, puzzles, seed, steps, views)
    dist, ort_version = vendor_onnxruntime_web(npm_cache, onnxruntime_web_version)
    manifest = package.manifest
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trm-scorm-") as tmp:
        onnx_path = export_onnx_step(package, Path(tmp) / "model.onnx")
        members = activity_members(document, onnx_path.read_bytes(), dist)
        title = manifest.title or manifest.name
        description = (
            f"{title}: solve the puzzle; the reasoning module {manifest.name} {manifest.version} "
            f"({package.digest[:19]}…) runs in your browser."
        )
        files = sorted(members)
        members["imsmanifest.xml"] = scorm_manifest(
            f"{manifest.module_id}#scorm", title, description, manifest.version, files
        ).encode()
        members.update(schema_members())
        tmp_zip = out_path.with_name(out_path.name + ".tmp")
        with zipfile.ZipFile(tmp_zip, "w") as zf:
            write_member(zf, "imsmanifest.xml", members.pop("imsmanifest.xml"))
            for name in sorted(members):
                write_member(zf, name, members[name])
        os.replace(tmp_zip, out_path)
        files = ["imsmanifest.xml", *sorted(members)]
    return ScormReport(
        path=out_path,
        size=out_path.stat().st_size,
        puzzles=len(document["puzzles"]),
        onnxruntime_web_version=ort_version,
        files=tuple(files),
    )
