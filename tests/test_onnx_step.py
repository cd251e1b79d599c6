"""The ONNX Runtime step gives model.solve the same answers as the eager step, halting included."""

from __future__ import annotations

import pytest
import torch

from trm_modules.model import TRM, TRMConfig

pytest.importorskip("onnxruntime")

TINY = dict(
    vocab_size=6,
    seq_len=16,
    puzzle_emb_ndim=32,
    puzzle_emb_len=2,
    hidden_size=32,
    num_heads=2,
    H_cycles=2,
    L_cycles=2,
    halt_max_steps=4,
)


def halting_model(mlp_t: bool, tokens: torch.Tensor) -> TRM:
    """Random weights whose halting head stops about half of ``tokens``' rows after the first step."""
    torch.manual_seed(3)
    model = TRM(TRMConfig(**TINY, mlp_t=mlp_t)).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.5)
        model.q_head.bias.fill_(0.0)
        first = model.solve(tokens, max_steps=1).confidence.logit().sort().values
        middle = len(first) // 2
        model.q_head.bias[0] = -(first[middle - 1] + first[middle]) / 2  # no row on the boundary q_halt = 0
    return model


@pytest.mark.parametrize("mlp_t", [False, True], ids=["attention", "mlp"])
def test_onnx_step_answers_equal_eager_answers_with_halting(mlp_t):
    from trm_modules.model.onnx_step import OnnxStep

    tokens = torch.randint(1, 6, (8, 16), generator=torch.Generator().manual_seed(0))
    model = halting_model(mlp_t, tokens)
    eager = model.solve(tokens)
    fast = OnnxStep(model, threads=1).solve(tokens)
    assert len(set(eager.steps.tolist())) > 1  # rows left the batch at different steps
    assert torch.equal(fast.tokens, eager.tokens) and torch.equal(fast.steps, eager.steps)
    assert torch.allclose(fast.confidence, eager.confidence, atol=1e-4)  # fp32 sums in another order
