"""Halting calibrated per package: when the first answer should stop.

The paper's rule stops an example at the first supervision step where ``q_halt > 0``. A small model's
halting head is often too eager (maze-9x9 1.0.0 stops at 2.3 steps on average while its answers are
best at step 4), so the first answer is worse than the model can give. ``calibrate_halting`` runs
every step on held-out puzzles, judges each step's answer by the task's rules (or the label where
the task has no rules), and picks the policy — stop at the first step ``s >= min_steps`` with
``q_halt > threshold`` — whose answers are valid most often, the fewest mean steps among equals.
The package stores it (``evaluation.halting``); ``Package.load_model`` applies it (``ReasoningModel.use_halting``), so
``trm solve``, the host and ``trm eval`` halt by it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..codec import TaskCodec
from ..model import ReasoningModel, constrained_argmax

#: Calibration puzzles come from the recipe's generator at the held-out seed plus this (not the test set).
CALIBRATION_SEED_OFFSET = 7_919


@torch.inference_mode()
def step_outcomes(
    model: ReasoningModel, codec: TaskCodec, inputs: list[dict], labels: list[dict] | None = None, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(valid, q_halt), each (N, max_steps): whether each step's answer is right, and its halting logit."""
    from ..views import decode_candidate

    model.eval()
    device = next(model.parameters()).device
    table = codec.answer_token_table()
    table = None if table is None else torch.from_numpy(table).to(device)
    steps = model.config.halt_max_steps
    valid = np.zeros((len(inputs), steps), dtype=bool)
    q_halt = np.zeros((len(inputs), steps), dtype=np.float64)
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        tokens = torch.from_numpy(np.stack([codec.encode_input(doc) for doc in chunk]).astype(np.int64)).to(device)
        ids = torch.tensor([codec.puzzle_id(doc) for doc in chunk], dtype=torch.long, device=device)
        x = model.input_embeddings(tokens, ids)
        carry = model.initial_carry(len(chunk))
        for step in range(steps):
            out = model.deep_recursion(x, carry)
            carry = out.carry
            answers = constrained_argmax(out.logits, tokens, table).cpu().numpy()
            q_halt[start : start + len(chunk), step] = model.halting_logit(out).float().cpu().numpy()
            for i, doc in enumerate(chunk):
                if labels is not None and not codec.can_check:
                    right = np.array_equal(answers[i], codec.encode_output(labels[start + i], doc))
                else:
                    right = decode_candidate(codec, answers[i], doc, 0, 0.0).valid is True
                valid[start + i, step] = right
    return valid, q_halt


def best_policy(valid: np.ndarray, q_halt: np.ndarray) -> dict[str, Any]:
    """The (threshold, min_steps) whose first answers are valid most often, fewest mean steps among equals."""
    n, steps = valid.shape
    # Thresholds worth trying: between the observed logits (each split changes some decision), and
    # +inf (never stop early: every example runs all steps).
    observed = np.unique(q_halt)
    if len(observed) > 512:  # enough to find the split; keeps the search cheap on big sets
        observed = np.unique(np.quantile(observed, np.linspace(0, 1, 512)))
    thresholds = np.concatenate([[0.0], (observed[:-1] + observed[1:]) / 2 if len(observed) > 1 else [], [np.inf]])
    best: tuple[float, float, float, int] | None = None
    for min_steps in range(1, steps + 1):
        for threshold in thresholds:
            stops = (q_halt > threshold) & (np.arange(1, steps + 1) >= min_steps)
            stops[:, -1] = True
            answer_step = stops.argmax(axis=1)
            accuracy = float(valid[np.arange(n), answer_step].mean())
            mean_steps = float(answer_step.mean() + 1)
            key = (accuracy, -mean_steps, -abs(float(threshold)) if np.isfinite(threshold) else -1e9, -min_steps)
            if best is None or key > best[0]:
                best = (key, float(threshold), mean_steps, min_steps)
    (accuracy, _, _, _), threshold, mean_steps, min_steps = best
    default_stop = q_halt > 0
    default_stop[:, -1] = True
    default_step = default_stop.argmax(axis=1)
    return {
        "threshold": threshold if np.isfinite(threshold) else None,
        "min_steps": min_steps,
        "accuracy": accuracy,
        "mean_steps": mean_steps,
        "default_accuracy": float(valid[np.arange(n), default_step].mean()),
        "default_mean_steps": float(default_step.mean() + 1),
        "per_step_valid": [float(v) for v in valid.mean(axis=0)],
        "puzzles": n,
    }


def calibrate_halting(
    model: ReasoningModel, codec: TaskCodec, inputs: list[dict], labels: list[dict] | None = None, dataset: str = ""
) -> dict[str, Any]:
    """The halting policy for ``model`` chosen on ``inputs`` (held-out puzzles); see the module doc.

    ``threshold`` None means: never stop before ``halt_max_steps``.
    """
    valid, q_halt = step_outcomes(model, codec, inputs, labels)
    policy = best_policy(valid, q_halt)
    policy["dataset"] = dataset
    policy["judged_by"] = "rules" if codec.can_check else "label"
    return policy
