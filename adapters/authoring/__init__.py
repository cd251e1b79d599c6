"""Authoring new tasks: ``trm new task NAME -o DIR`` writes a plugin distribution that works and is tested as
generated (``scaffold``), and ``trm codec check NAME`` runs the task-codec contract checks (``contract``). Both
are ``trm`` sub-commands registered through ``trm_register_commands`` (``commands``). The walk from a scaffold
to a signed package served over HTTP and exported as SCORM is docs/authoring.md.
"""

from .contract import CheckResult, check_codec
from .scaffold import ScaffoldError, scaffold_task

__all__ = ["check_codec", "CheckResult", "scaffold_task", "ScaffoldError"]
