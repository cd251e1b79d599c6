"""The built-in architectures plugin: TRM and HRM, registered through the same hook a third party uses.

Kept light: the networks (and torch) are imported when the hook is called, not when the plugin
manager is built, so ``trm --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl


class BuiltinArchitectures:
    """``trm_register_architectures`` for the two architectures the project ships."""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    @hookimpl
    def trm_register_architectures(self) -> list[Any]:
        from .model.architecture import Architecture
        from .model.config import PRESETS, TRMConfig
        from .model.hrm import HRM, HRM_PRESETS, HRMConfig
        from .model.trm import TRM

        return [
            Architecture(
                "trm",
                TRMConfig,
                TRM,
                PRESETS,
                "Tiny Recursive Model (arXiv 2510.04871): one 2-layer network recursing on z and y",
            ),
            Architecture(
                "hrm",
                HRMConfig,
                HRM,
                HRM_PRESETS,
                "Hierarchical Reasoning Model (arXiv 2506.21734): slow H and fast L modules, "
                "one-step gradient, Q-learning halting",
            ),
        ]
