"""cmi5 course export of a module: ``trm export-cmi5 MODULE[@VERSION] -o course.zip``.

    from trm_adapters.cmi5 import export_cmi5
    report = export_cmi5(open_package("sudoku-4x4-1.0.0.trm"), "course.zip")

The zip holds ``cmi5.xml`` (one course, one AU for the module; valid against cmi5's
CourseStructure.xsd; moveOn ``Passed``, masteryScore 0.8 of the cells by the learner) and the AU:
the same browser activity as the SCORM export (the module's step model in onnxruntime-web, the
server's test-time views, the grading rule that gives the module's cells to the module), reporting
through the cmi5 client @xapi/cmi5 (vendored from the npm registry) in ``cmi5.js``.
"""

from .export import MASTERY_SCORE, MOVE_ON, Cmi5ExportError, Cmi5Report, course_structure, export_cmi5

__all__ = ["export_cmi5", "course_structure", "Cmi5ExportError", "Cmi5Report", "MASTERY_SCORE", "MOVE_ON"]
