"""Evaluation: exact-answer accuracy at every supervision step, and what early halting buys."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..model import ReasoningModel, constrained_argmax
from .data import TokenSet


@dataclass
class EvalReport:
    """Accuracy of whole answers on a held-out set.

    ``per_step_accuracy[k]`` is the accuracy after k+1 supervision steps for every example (the
    authors' protocol); ``accuracy_halting`` / ``mean_steps_halting`` are what ``solve(halt=True)``
    gives: each example answers at the first step where its halting policy stops it (halting logit > 0 unless calibrated).
    """

    puzzles: int
    per_step_accuracy: list[float]
    accuracy_halting: float
    mean_steps_halting: float
    halting_step_counts: list[int] = field(default_factory=list)  # index k → examples halting at step k+1

    @property
    def accuracy_1_step(self) -> float:
        return self.per_step_accuracy[0]

    @property
    def accuracy_all_steps(self) -> float:
        return self.per_step_accuracy[-1]

    def to_json(self) -> dict:
        out = asdict(self)
        out["accuracy_1_step"] = self.accuracy_1_step
        out["accuracy_all_steps"] = self.accuracy_all_steps
        return out


@torch.inference_mode()
def evaluate(
    model: ReasoningModel,
    data: TokenSet,
    max_steps: int | None = None,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    answer_table: np.ndarray | None = None,
) -> EvalReport:
    """Run every example for ``max_steps`` steps and record accuracy per step and at halting;
    ``answer_table`` (the codec's ``answer_token_table``) decodes as every solving path does."""
    model.eval()
    table = None if answer_table is None else torch.from_numpy(answer_table).to(device)
    max_steps = max_steps or model.config.halt_max_steps
    n = len(data)
    correct_per_step = np.zeros(max_steps, dtype=np.int64)
    halt_step = np.full(n, max_steps, dtype=np.int64)
    correct_at_halt = np.zeros(n, dtype=bool)
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        tokens = torch.from_numpy(data.inputs[sl]).to(device)
        labels = torch.from_numpy(data.labels[sl]).to(device)
        ids = torch.from_numpy(data.puzzle_ids[sl]).to(device)
        x = model.input_embeddings(tokens, ids)
        carry = model.initial_carry(tokens.shape[0])
        halted = torch.zeros(tokens.shape[0], dtype=torch.bool, device=device)
        for step in range(max_steps):
            out = model.deep_recursion(x, carry)
            carry = out.carry
            ok = (constrained_argmax(out.logits, tokens, table) == labels).all(-1)
            correct_per_step[step] += int(ok.sum())
            stop = (model.halting_logit(out) > model.halt_threshold) & (step + 1 >= model.halt_min_steps)
            newly = ~halted & (stop | (step == max_steps - 1))
            idx = newly.nonzero().squeeze(-1).cpu().numpy() + start
            halt_step[idx] = step + 1
            correct_at_halt[idx] = ok[newly].cpu().numpy()
            halted |= newly
    counts = np.bincount(halt_step - 1, minlength=max_steps)
    return EvalReport(
        puzzles=n,
        per_step_accuracy=[float(c) / n for c in correct_per_step],
        accuracy_halting=float(correct_at_halt.mean()),
        mean_steps_halting=float(halt_step.mean()),
        halting_step_counts=[int(c) for c in counts],
    )


def plot_report(report: EvalReport, out_dir: Path, title: str = "") -> list[Path]:
    """Write ``accuracy_vs_steps.png`` and ``halting_steps.png``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    steps = np.arange(1, len(report.per_step_accuracy) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(steps, np.array(report.per_step_accuracy) * 100, marker="o")
    ax.axhline(
        report.accuracy_halting * 100, ls="--", c="gray", label=f"with halting ({report.mean_steps_halting:.2f} steps)"
    )
    ax.set_xlabel("supervision steps")
    ax.set_ylabel("exact answers (%)")
    ax.set_title(title or "accuracy vs supervision steps")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    acc_path = out_dir / "accuracy_vs_steps.png"
    fig.savefig(acc_path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.bar(steps, report.halting_step_counts)
    ax.set_xlabel("halting step")
    ax.set_ylabel("puzzles")
    ax.set_title((title + ": " if title else "") + "halting steps")
    fig.tight_layout()
    hist_path = out_dir / "halting_steps.png"
    fig.savefig(hist_path)
    plt.close(fig)
    return [acc_path, hist_path]


def plot_history(history: list[dict], out_dir: Path, title: str = "") -> Path | None:
    """Write ``accuracy_vs_training_step.png``: held-out exact accuracy against optimiser step over every
    sitting of a run (``history`` points: step, exact, optional exact_halting); None when there is none."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    points = sorted(history, key=lambda point: point["step"])
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(
        [p["step"] for p in points],
        [p["exact"] * 100 for p in points],
        marker="o",
        ms=3,
        label="held-out exact, all steps",
    )
    halting = [p for p in points if p.get("exact_halting") is not None]
    if halting:
        ax.plot(
            [p["step"] for p in halting],
            [p["exact_halting"] * 100 for p in halting],
            ls="--",
            c="gray",
            label="with halting",
        )
    ax.set_xlabel("optimiser step (all sittings)")
    ax.set_ylabel("exact answers (%)")
    ax.set_title((title + ": " if title else "") + "accuracy vs training step")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out_dir / "accuracy_vs_training_step.png"
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass
class RuleReport:
    """How many answers the task's rules accept, answering as ``trm solve`` does (halting, views)."""

    puzzles: int
    views: int  # views an answer could be sought in
    valid: float  # share of answers the rules accept
    mean_views: float  # views solved per input on average
    mean_steps: float  # supervision steps per input, over all its views

    def to_json(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def rule_check_report(
    model: ReasoningModel, codec, inputs: list[dict], views: int = 1, batch_size: int = 512
) -> RuleReport | None:
    """Judge answers by the task's rules rather than one stored answer (``trm_modules.views`` for
    ``views``); None when the codec cannot check answers.

    This is how answers are judged where a task can have several right answers (any valid
    completion of a Sudoku with several solutions).
    """
    from ..solving import ModelAnswer, solve_inputs

    if not inputs or not codec.can_check:
        return None
    model.eval()
    results = solve_inputs(model, codec, inputs, views=views, batch_size=batch_size)
    answers = [r for r in results if isinstance(r, ModelAnswer)]
    return RuleReport(
        puzzles=len(inputs),
        views=views,
        valid=sum(a.valid is True for a in answers) / len(inputs),
        mean_views=float(np.mean([a.views for a in answers])) if answers else float(views),
        mean_steps=float(np.mean([a.steps for a in answers])) if answers else 0.0,
    )


def valid_fraction(model: ReasoningModel, codec, inputs: list[dict], batch_size: int = 512) -> float | None:
    """Share of inputs whose first answer (``solve`` with halting) the codec's rule check accepts;
    None when the codec has no checker."""
    report = rule_check_report(model, codec, inputs, views=1, batch_size=batch_size)
    return None if report is None else report.valid
