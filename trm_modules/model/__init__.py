"""The TRM network and its recursion (pure torch, no I/O)."""

from .config import PRESETS, TRMConfig
from .trm import TRM, Carry, Solution, StepOutput, constrained_argmax, count_parameters
from .authors import load_authors_checkpoint, to_authors_state_dict

__all__ = [
    "PRESETS", "TRMConfig", "TRM", "Carry", "Solution", "StepOutput", "constrained_argmax", "count_parameters",
    "load_authors_checkpoint", "to_authors_state_dict",
]
