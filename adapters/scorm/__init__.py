"""SCORM 2004 (4th edition) export of a module: a web activity that runs the model in the browser.

    from trm_adapters.scorm import export_scorm
    report = export_scorm(open_package("sudoku-4x4-1.0.0.trm"), "activity.zip")

The zip holds ``imsmanifest.xml`` (metadata, one organization, one SCO resource) and ADL's schema
files it validates against (``schemas/``, unmodified), the activity (``index.html``, ``activity.js``,
``activity.css``, ``scorm.js``), ``activity.json`` (module, puzzles and their encodings, the server's
test-time views), the module's one-step ONNX export (``model.onnx``, looped with early halting in
the page) and onnxruntime-web's WASM build, vendored from the npm registry at export time (``npm
install`` into a cache folder). The learner fills in a puzzle, may ask the module (which runs in the
browser, no server), and submits; the activity reports completion, success, a score that counts only
the learner's own cells, one interaction per submission and per help, session time and exit through
the SCORM 2004 runtime API (``API_1484_11``).
"""

from .export import ScormExportError, ScormReport, export_scorm, scorm_manifest
from .vendor import ONNXRUNTIME_WEB_VERSION, vendor_onnxruntime_web

__all__ = [
    "export_scorm",
    "scorm_manifest",
    "ScormExportError",
    "ScormReport",
    "vendor_onnxruntime_web",
    "ONNXRUNTIME_WEB_VERSION",
]
