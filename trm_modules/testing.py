"""Helpers for tests and benchmarks of code that serves models: stand-in models with known behaviour."""

from __future__ import annotations

import torch

from .model import TRM, TRMConfig


def digit_answering_sudoku_model(config: TRMConfig, seed: int) -> TRM:
    """An untrained Sudoku TRM whose every answer token is a digit, so the codec decodes each answer.

    Pad and blank (tokens 0, 1) score 0 and tokens 2 and 3 score opposite values, so one of them
    always scores above 0 (most answers break the rules). Different seeds answer differently,
    which makes each answer attributable to the model that gave it.
    """
    torch.manual_seed(seed)
    model = TRM(config).eval()
    with torch.no_grad():
        weight = model.lm_head.weight
        weight[0:2] = 0.0
        weight[3] = -weight[2]
    return model
