"""Losses of deep supervision: token cross-entropy (stablemax or softmax) and the halting BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_LABEL = -100


def _stablemax_s(x: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + eps), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of s(x)/Σs(x) with s(x) = x+1 (x ≥ 0), 1/(1−x) (x < 0): the authors' default."""
    s_x = _stablemax_s(x)
    return torch.log(s_x / s_x.sum(dim=dim, keepdim=True))


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, kind: str = "stablemax") -> torch.Tensor:
    """Per-token loss (B, L); positions labelled ``IGNORE_LABEL`` contribute 0."""
    valid = labels != IGNORE_LABEL
    safe = torch.where(valid, labels, 0).long()
    if kind == "stablemax":
        logprobs = log_stablemax(logits.to(torch.float64), dim=-1)
    elif kind == "softmax":
        logprobs = F.log_softmax(logits.float(), dim=-1)
    else:
        raise ValueError(f"unknown loss {kind!r}; expected 'stablemax' or 'softmax'")
    picked = torch.gather(logprobs, -1, safe.unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0).to(torch.float32)


def deep_supervision_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    q_halt: torch.Tensor,
    kind: str = "stablemax",
    halt_weight: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one supervision step, averaged over the batch.

    Token CE averaged per sequence, plus ``halt_weight`` · BCE(q_halt, whole answer correct).
    """
    valid = labels != IGNORE_LABEL
    counts = valid.sum(-1).clamp_min(1)
    lm = (token_cross_entropy(logits, labels, kind).sum(-1) / counts).mean()
    with torch.no_grad():
        token_ok = (logits.argmax(-1) == labels) | ~valid
        seq_ok = token_ok.all(-1)
    halt = F.binary_cross_entropy_with_logits(q_halt, seq_ok.to(q_halt.dtype))
    metrics = {
        "lm_loss": lm.detach(),
        "halt_loss": halt.detach(),
        "token_accuracy": (token_ok.float().sum() / token_ok.numel()).detach(),
        "exact_accuracy": seq_ok.float().mean(),
        "seq_correct": seq_ok,
    }
    return lm + halt_weight * halt, metrics
