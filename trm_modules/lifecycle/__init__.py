"""A module's lifecycle across training and the package format: pack a run, recalibrate a package,
retrain a package from feedback, continue a run from a package.

The one layer that imports both ``trm_modules.train`` and ``trm_modules.package`` (which never import
each other):

    from trm_modules.lifecycle import pack_run, retrain
    path = pack_run("runs/sudoku-4x4", name="sudoku-4x4", version="1.0.0")
"""

from .continuation import load_package_start
from .from_run import pack_run
from .recalibrate import recalibrate_package
from .retrain import RetrainResult, retrain

__all__ = ["load_package_start", "pack_run", "recalibrate_package", "retrain", "RetrainResult"]
