"""Building the SCORM zip: manifest, activity files, puzzles, ONNX model, vendored onnxruntime-web."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from trm_modules.errors import TRMError

from .vendor import DIST_FILES, ONNXRUNTIME_WEB_VERSION, vendor_onnxruntime_web

ACTIVITY_FILES = ("index.html", "activity.js", "activity.css")
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


def grid_view(codec: Any) -> dict[str, Any]:
    """How the browser shows and edits the task's token grid; only fill-in grid tasks (Sudoku) have one."""
    if codec.name != "sudoku":
        raise ScormExportError(f"the SCORM activity has a browser view for fill-in grids (the 'sudoku' codec); "
                               f"{codec.name!r} has none yet")
    size = codec.size
    return {"kind": "fill-grid", "rows": size, "cols": size, "box_rows": codec.box_rows, "box_cols": codec.box_cols,
            "blank_token": 1, "labels": {str(d + 1): str(d) for d in range(1, size + 1)}}


def activity_document(package: Any, puzzles: int, seed: int, max_steps: int) -> dict[str, Any]:
    """``activity.json``: the module, the view, and the puzzles with their token encodings and solutions."""
    codec = package.codec()
    view = grid_view(codec)
    pairs = codec.generate(np.random.default_rng(seed), puzzles)
    items = []
    for index, (data_in, data_out) in enumerate(pairs):
        items.append({"id": f"puzzle-{index + 1}", "input": data_in,
                      "tokens": [int(t) for t in codec.encode_input(data_in)],
                      "puzzle_id": int(codec.puzzle_id(data_in)),
                      "solution_tokens": [int(t) for t in codec.encode_output(data_out, data_in)]})
    manifest = package.manifest
    return {"module": manifest.name, "version": manifest.version, "module_id": manifest.module_id,
            "title": manifest.title, "digest": package.digest, "codec": codec.name, "params": codec.params,
            "seq_len": codec.seq_len, "steps": max_steps, "view": view, "puzzles": items}


def scorm_manifest(identifier: str, title: str, description: str, version: str, files: list[str]) -> str:
    """``imsmanifest.xml`` of a one-SCO SCORM 2004 4th-edition package (LOM metadata inline)."""
    file_list = "\n".join(f'      <file href="{escape(name)}"/>' for name in files)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="{escape(identifier)}" version="{escape(version)}"
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


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def export_scorm(package: Any, out_path: str | os.PathLike[str], *, puzzles: int = 5, seed: int = 0,
                 max_steps: int | None = None, npm_cache: Path | None = None,
                 onnxruntime_web_version: str = ONNXRUNTIME_WEB_VERSION) -> ScormReport:
    """Write the SCORM 2004 package of an opened ``package`` to ``out_path``; see the package docstring."""
    from trm_modules.package.onnx_export import export_onnx

    if puzzles < 1:
        raise ScormExportError(f"an activity needs at least one puzzle, got {puzzles}")
    steps = max_steps or package.manifest.model.config.halt_max_steps
    document = activity_document(package, puzzles, seed, steps)
    dist, ort_version = vendor_onnxruntime_web(npm_cache, onnxruntime_web_version)
    manifest = package.manifest
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trm-scorm-") as tmp:
        onnx_path = export_onnx(package, Path(tmp) / "model.onnx", max_steps=steps)
        members: dict[str, bytes] = {}
        template = resources.files(__package__)
        for name in ACTIVITY_FILES:
            members[name] = template.joinpath(name).read_bytes()
        members["activity.json"] = json.dumps(document, indent=1).encode()
        members["model.onnx"] = onnx_path.read_bytes()
        for name in DIST_FILES:
            members[f"vendor/{name}"] = (dist / name).read_bytes()
        title = manifest.title or manifest.name
        description = (f"{title}: solve the puzzle; the reasoning module {manifest.name} {manifest.version} "
                       f"({package.digest[:19]}…) runs in your browser.")
        files = sorted(members)
        members["imsmanifest.xml"] = scorm_manifest(f"{manifest.module_id}#scorm", title, description,
                                                     manifest.version, files).encode()
        tmp_zip = out_path.with_name(out_path.name + ".tmp")
        with zipfile.ZipFile(tmp_zip, "w") as zf:
            _add(zf, "imsmanifest.xml", members.pop("imsmanifest.xml"))
            for name in files:
                _add(zf, name, members[name])
        os.replace(tmp_zip, out_path)
    return ScormReport(path=out_path, size=out_path.stat().st_size, puzzles=len(document["puzzles"]),
                       onnxruntime_web_version=ort_version, files=("imsmanifest.xml", *files))
