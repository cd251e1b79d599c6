"""HRM parity with its authors' code: the same weights through their ``hrm_act_v1.py`` and our ``HRM``.

Needs a checkout of the authors' repository (github.com/sapientinc/HRM; none of its code is copied
here). Their attention calls flash-attention, which needs CUDA builds; this harness puts a stand-in
``flash_attn`` module on ``sys.path`` whose ``flash_attn_func`` is ``torch.nn.functional.
scaled_dot_product_attention`` (same maths, any device). Everything else is their code as published.

It builds their model from a config (default: their paper configuration on Sudoku, 27.27M parameters),
gives every tensor random values (their Q head and puzzle embedding start at constants), saves their
state dict as a torch.compile'd checkpoint would (``_orig_mod.model.inner.…``) and imports that file
with ``load_authors_hrm_checkpoint`` (``weights_only=True``). Then both models answer the same random
puzzles for ``halt_max_steps`` supervision steps (their evaluation mode: every step runs) and the
script prints the largest absolute difference of the answer logits and of both Q values over all
steps, and the time ratio of ours to theirs measured in this process.

    python bench/hrm_parity.py --authors /path/to/HRM [--small] [--batch 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F


def install_sdpa_flash_attention() -> None:
    """A ``flash_attn`` module whose ``flash_attn_func`` runs PyTorch's SDPA (inputs (B, S, H, hd))."""

    def flash_attn_func(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        return out.transpose(1, 2)

    module = types.ModuleType("flash_attn")
    module.flash_attn_func = flash_attn_func  # type: ignore[attr-defined]
    sys.modules["flash_attn"] = module
    sys.modules.pop("flash_attn_interface", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", required=True, help="Checkout of github.com/sapientinc/HRM.")
    parser.add_argument("--small", action="store_true", help="A small config (seconds) instead of the paper's.")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    install_sdpa_flash_attention()
    sys.path.insert(0, str(Path(args.authors).resolve()))
    from models.hrm.hrm_act_v1 import HierarchicalReasoningModel_ACTV1  # the authors' module

    from trm_modules.model import HRM_PRESETS, HRMConfig, load_authors_hrm_checkpoint

    ours_config = HRM_PRESETS["paper-hrm-sudoku"]
    if args.small:
        ours_config = HRMConfig(
            vocab_size=11,
            seq_len=81,
            num_puzzle_identifiers=3,
            puzzle_emb_ndim=64,
            hidden_size=64,
            num_heads=4,
            H_layers=2,
            L_layers=2,
            H_cycles=2,
            L_cycles=2,
            halt_max_steps=8,
        )
    cfg = ours_config
    theirs_config = dict(
        batch_size=args.batch,
        seq_len=cfg.seq_len,
        puzzle_emb_ndim=cfg.puzzle_emb_ndim,
        num_puzzle_identifiers=cfg.num_puzzle_identifiers,
        vocab_size=cfg.vocab_size,
        H_cycles=cfg.H_cycles,
        L_cycles=cfg.L_cycles,
        H_layers=cfg.H_layers,
        L_layers=cfg.L_layers,
        hidden_size=cfg.hidden_size,
        expansion=cfg.expansion,
        num_heads=cfg.num_heads,
        pos_encodings=cfg.pos_encodings,
        halt_max_steps=cfg.halt_max_steps,
        halt_exploration_prob=cfg.halt_exploration_prob,
        forward_dtype="float32",
    )
    torch.manual_seed(args.seed)
    theirs = HierarchicalReasoningModel_ACTV1(theirs_config)
    with torch.no_grad():  # every tensor random, so that no head or table is a constant
        for tensor in theirs.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor) * tensor.float().std().clamp_min(0.02))
    theirs.eval()

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "step_1"
        torch.save({f"_orig_mod.model.{k}": v for k, v in theirs.state_dict().items()}, checkpoint)
        ours = load_authors_hrm_checkpoint(checkpoint, cfg).eval()

    tokens = torch.randint(1, cfg.vocab_size, (args.batch, cfg.seq_len))
    ids = torch.randint(0, cfg.num_puzzle_identifiers, (args.batch,))
    batch = {"inputs": tokens.to(torch.int32), "labels": tokens, "puzzle_identifiers": ids.to(torch.int32)}

    worst = {"logits": 0.0, "q_halt": 0.0, "q_continue": 0.0}
    with torch.inference_mode():
        start = time.perf_counter()
        carry = theirs.initial_carry(batch)
        theirs_steps = []
        for _ in range(cfg.halt_max_steps):
            carry, outputs = theirs(carry=carry, batch=batch)
            theirs_steps.append(outputs)
        theirs_s = time.perf_counter() - start

        start = time.perf_counter()
        x = ours.input_embeddings(tokens, ids)
        state = ours.initial_carry(args.batch)
        ours_steps = []
        for _ in range(cfg.halt_max_steps):
            out = ours.deep_recursion(x, state)
            state = out.carry
            ours_steps.append(out)
        ours_s = time.perf_counter() - start

    for theirs_out, ours_out in zip(theirs_steps, ours_steps):
        worst["logits"] = max(worst["logits"], float((theirs_out["logits"] - ours_out.logits).abs().max()))
        worst["q_halt"] = max(worst["q_halt"], float((theirs_out["q_halt_logits"] - ours_out.q_halt).abs().max()))
        worst["q_continue"] = max(
            worst["q_continue"], float((theirs_out["q_continue_logits"] - ours_out.q_continue).abs().max())
        )
    scale = max(float(o["logits"].abs().max()) for o in theirs_steps)
    parameters = ours.count_parameters()
    print(
        f"HRM parity, {'small' if args.small else 'paper (paper-hrm-sudoku)'} config: {parameters:,} parameters "
        f"(puzzle table excluded), batch {args.batch}, {cfg.halt_max_steps} supervision steps, float32, CPU"
    )
    print("  authors' checkpoint imported from a _orig_mod.model.inner.* file with weights_only=True")
    print(
        f"  max |ours - theirs|: logits {worst['logits']:.3g} (largest |logit| {scale:.3g}), "
        f"q_halt {worst['q_halt']:.3g}, q_continue {worst['q_continue']:.3g}"
    )
    same = all(torch.equal(t["logits"].argmax(-1), o.logits.argmax(-1)) for t, o in zip(theirs_steps, ours_steps))
    print(f"  answer tokens identical at every step: {same}")
    print(f"  time ours / theirs: {ours_s / theirs_s:.2f}x ({ours_s:.2f} s vs {theirs_s:.2f} s)")


if __name__ == "__main__":
    main()
