"""The reasoning networks (TRM, HRM) and their recursion (pure torch, no I/O)."""

from .config import PRESETS, TRMConfig
from .reasoning import ReasoningModel
from .trm import TRM, Carry, Solution, StepOutput, constrained_argmax, count_parameters
from .hrm import HRM, HRM_PRESETS, HRMConfig
from .architecture import Architecture
from .authors import load_authors_checkpoint, load_authors_hrm_checkpoint, to_authors_state_dict

__all__ = [
    "PRESETS",
    "TRMConfig",
    "TRM",
    "Carry",
    "Solution",
    "StepOutput",
    "constrained_argmax",
    "count_parameters",
    "ReasoningModel",
    "HRM",
    "HRM_PRESETS",
    "HRMConfig",
    "Architecture",
    "load_authors_checkpoint",
    "load_authors_hrm_checkpoint",
    "to_authors_state_dict",
]
