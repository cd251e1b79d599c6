"""The ``auto`` engine: eager or ONNX Runtime, on one core or all, chosen per model and batch shape by measurement.

Which is faster depends on the model, the batch and the machine's load: on a 2-core CPU the ONNX
step of a 9×9 Sudoku model at batch 1 is ~1.6× the eager one, eager intra-op threads on a machine
other processes keep busy can be *slower* than one thread (every parallel region waits for the
slowest thread to be scheduled), and at batch 16 the ranking can change again. So instead of a
rule, ``choose_step`` times every candidate (engine × intra-op threads, and each engine with the
batch's rows split across one single-threaded worker per core) on the model itself, at each batch shape, in interleaved rounds (median of each), when the model loads; the result is a
``ChosenStep`` that runs each batch with the candidate that was fastest for the nearest measured
shape.

Answers stay identical: an ONNX candidate, and a split one, is only admitted after it solved the check
inputs (with halting, so halting decisions are compared too) to exactly the eager tokens and steps; a
model where it does not is served eager (``EngineChoice.refused``).

A split candidate (``eager×1 ÷2``: two workers of one thread each) runs each worker's rows on its own
core with no OpenMP team to wait for: where intra-op threads lose to a busy machine's scheduling, whole
rows per core may not, and at batch 16 no parallel region is smaller than a row's work.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .onnx_step import OnnxStep, export_step_graph, import_onnxruntime
from .precision import all_cores
from .trm import TRM, Carry, StepOutput


def _rows(value: Any, start: int, stop: int, batch: int) -> Any:
    """``value`` (a tensor or a dataclass of tensors, e.g. a carry) cut to rows ``start:stop`` of its batch."""
    if isinstance(value, torch.Tensor):
        return value[start:stop] if value.dim() and value.shape[0] == batch else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value)(
            **{f.name: _rows(getattr(value, f.name), start, stop, batch) for f in dataclasses.fields(value)}
        )
    return value


def _joined(parts: list[Any]) -> Any:
    """The rows of ``parts`` (outputs of one step over consecutive row ranges) as one batch again."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts) if first.dim() else first
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return type(first)(**{f.name: _joined([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(first)})
    return first


def _one_thread() -> None:
    torch.set_num_threads(1)


@dataclass(eq=False)
class Candidate:
    """One way to compute a supervision step: an engine on ``threads`` intra-op threads, or (``workers`` > 1)
    with the batch's rows split across ``workers`` threads of one intra-op thread each."""

    engine: str
    threads: int
    onnx: OnnxStep | None = None
    workers: int = 1
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.engine}×{self.threads}" + (f" ÷{self.workers}" if self.workers > 1 else "")

    def _whole(self, model: TRM, x: torch.Tensor, carry: Carry) -> StepOutput:
        return self.onnx(x, carry) if self.onnx is not None else model.deep_recursion(x, carry)

    def run(self, model: TRM, x: torch.Tensor, carry: Carry) -> StepOutput:
        previous = torch.get_num_threads()
        if previous != self.threads:
            torch.set_num_threads(self.threads)
        try:
            rows = x.shape[0]
            if self.workers <= 1 or rows < 2:
                return self._whole(model, x, carry)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="trm-step", initializer=_one_thread)
            bounds = [(rows * i // self.workers, rows * (i + 1) // self.workers) for i in range(self.workers)]
            futures = [
                self._pool.submit(self._whole, model, x[a:b], _rows(carry, a, b, rows)) for a, b in bounds if b > a
            ]
            return _joined([f.result() for f in futures])
        finally:
            if previous != self.threads:
                torch.set_num_threads(previous)


@dataclass
class EngineChoice:
    """What was measured and chosen: per batch shape, each candidate's median step time (ms) and the winner."""

    timings: dict[int, dict[str, float]] = field(default_factory=dict)
    dropped: dict[int, dict[str, float]] = field(default_factory=dict)  # warm-up ms of candidates not timed further
    chosen: dict[int, str] = field(default_factory=dict)
    refused: str | None = None  # why ONNX was not a candidate (unavailable, answers differ)
    refused_split: str | None = None  # why rows split across workers were not a candidate
    seconds: float = 0.0  # what choosing cost

    def describe(self) -> str:
        parts = []
        for rows, name in sorted(self.chosen.items()):
            times = self.timings.get(rows, {})
            others = ", ".join(f"{n} {ms:.1f}" for n, ms in sorted(times.items(), key=lambda kv: kv[1]))
            others += "".join(f", {n} {ms:.0f} at warm-up" for n, ms in self.dropped.get(rows, {}).items())
            parts.append(f"batch {rows}: {name} ({others} ms)")
        text = "; ".join(parts)
        text += f"; onnx refused: {self.refused}" if self.refused else ""
        return text + (f"; split rows refused: {self.refused_split}" if self.refused_split else "")


class ChosenStep:
    """A supervision step (``TRM.solve``'s ``step``) that runs each batch with the candidate chosen for it."""

    def __init__(self, model: TRM, by_rows: dict[int, Candidate], choice: EngineChoice) -> None:
        self.model = model
        self.by_rows = dict(sorted(by_rows.items()))
        self.choice = choice

    def candidate_for(self, rows: int) -> Candidate:
        """The candidate measured at the smallest shape ≥ ``rows`` (the largest shape beyond them)."""
        for measured, candidate in self.by_rows.items():
            if rows <= measured:
                return candidate
        return next(reversed(self.by_rows.values()))

    def __call__(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        return self.candidate_for(x.shape[0]).run(self.model, x, carry)

    @property
    def engines(self) -> set[str]:
        return {c.engine for c in self.by_rows.values()}


def _same_answers(
    model: TRM, candidate: Candidate, tokens: torch.Tensor, puzzle_ids: torch.Tensor, answer_table: torch.Tensor | None
) -> bool:
    with torch.inference_mode():
        reference = model.solve(tokens, puzzle_ids, answer_table=answer_table)
        other = model.solve(tokens, puzzle_ids, answer_table=answer_table, step=lambda x, c: candidate.run(model, x, c))
    return torch.equal(reference.tokens, other.tokens) and torch.equal(reference.steps, other.steps)


def _check_inputs(
    config: Any, check_tokens: np.ndarray | None, check_puzzle_ids: np.ndarray | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs a candidate must answer exactly as eager does: the given ones, else 8 random inputs."""
    if check_tokens is None:
        return (
            torch.randint(1, config.vocab_size, (8, config.seq_len), generator=generator),
            torch.zeros(8, dtype=torch.long),
        )
    tokens = torch.from_numpy(np.asarray(check_tokens, dtype=np.int64))
    return tokens, torch.from_numpy(
        np.asarray(check_puzzle_ids if check_puzzle_ids is not None else np.zeros(len(tokens)), dtype=np.int64)
    )


def choose_step(
    model: TRM,
    *,
    shapes: Sequence[int] = (1, 16),
    threads: Sequence[int] | None = None,
    engines: Sequence[str] = ("eager", "onnx"),
    rounds: int = 3,
    budget_s: float = 4.0,
    drop_above: float = 3.0,
    check_tokens: np.ndarray | None = None,
    check_puzzle_ids: np.ndarray | None = None,
    answer_table: np.ndarray | None = None,
    seed: int = 0,
) -> ChosenStep:
    """Measure every candidate (``engines`` × ``threads``, default 1 and all cores) on ``model`` (CPU, fp32) at
    each batch size in ``shapes`` and return the step that uses the fastest per shape.

    ``check_tokens`` / ``check_puzzle_ids``: inputs an ONNX candidate must solve to exactly the eager answers
    (tokens and halting steps) to be admitted (default: 8 random inputs; a package's examples are better).
    ``rounds``: timed rounds after one warm-up, candidates interleaved, the median kept; a candidate whose
    warm-up took over ``drop_above`` × the fastest warm-up is dropped at that shape (its warm-up time stands as
    its timing), and rounds stop after ``budget_s`` per shape (at least one round), so choosing stays cheap
    when one candidate is very slow (eager intra-op threads on a busy machine).
    """
    start = time.perf_counter()
    cores = all_cores()
    thread_counts = sorted(set(threads or (1, cores)))
    workers = max(thread_counts)
    choice = EngineChoice()
    splits: list[Candidate] = []  # rows split across one single-threaded worker per core
    candidates = [Candidate("eager", t) for t in thread_counts] if "eager" in engines else []
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    if "onnx" in engines:
        try:
            import_onnxruntime()
            graph = export_step_graph(model)
            onnx = [Candidate("onnx", t, OnnxStep(model, threads=t, graph=graph)) for t in thread_counts]
        except Exception as exc:  # noqa: BLE001 - any failure to build the ONNX step leaves eager
            choice.refused = f"{type(exc).__name__}: {exc}"
            onnx = []
        if onnx:
            tokens, ids = _check_inputs(config, check_tokens, check_puzzle_ids, generator)
            table = None if answer_table is None else torch.from_numpy(answer_table)
            if _same_answers(model, onnx[0], tokens, ids, table):
                candidates += onnx
                if workers > 1:  # ONNX Runtime sessions may run concurrently: one single-threaded session shared
                    single = next((c.onnx for c in onnx if c.threads == 1), None)
                    splits.append(
                        Candidate("onnx", 1, single or OnnxStep(model, threads=1, graph=graph), workers=workers)
                    )
            else:
                choice.refused = "its answers differ from eager on the check inputs"
    if "eager" in engines and workers > 1:
        splits.insert(0, Candidate("eager", 1, workers=workers))
    if splits:
        tokens, ids = _check_inputs(config, check_tokens, check_puzzle_ids, generator)
        table = None if answer_table is None else torch.from_numpy(answer_table)
        differing = [c.name for c in splits if not _same_answers(model, c, tokens, ids, table)]
        candidates += [c for c in splits if c.name not in differing]
        if differing:
            choice.refused_split = f"{', '.join(differing)}: answers differ from the whole batch's on the check inputs"
    if not candidates:
        candidates = [Candidate("eager", cores)]
    by_rows: dict[int, Candidate] = {}
    with torch.inference_mode():
        for rows in sorted(set(shapes)):
            tokens = torch.randint(1, config.vocab_size, (rows, config.seq_len), generator=generator)
            x = model.input_embeddings(tokens, torch.zeros(rows, dtype=torch.long))
            carry = model.initial_carry(rows)
            shape_start = time.perf_counter()
            warm: dict[str, float] = {}
            here = [c for c in candidates if c.workers <= 1 or rows >= c.workers]  # a split needs a row per worker
            for c in here:  # warm-up: ONNX Runtime plans, OpenMP teams start
                t0 = time.perf_counter()
                c.run(model, x, carry)
                warm[c.name] = time.perf_counter() - t0
            fastest = min(warm.values())
            timed = [c for c in here if warm[c.name] <= drop_above * fastest]
            samples: dict[str, list[float]] = {c.name: [] for c in timed}
            for r in range(rounds):
                if r and time.perf_counter() - shape_start > budget_s:
                    break
                order = timed[r % len(timed) :] + timed[: r % len(timed)]
                for c in order:
                    t0 = time.perf_counter()
                    c.run(model, x, carry)
                    samples[c.name].append(time.perf_counter() - t0)
            medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
            best = min(timed, key=lambda c: medians[c.name])
            choice.dropped[rows] = {c.name: warm[c.name] * 1000 for c in here if c not in timed}
            choice.timings[rows] = medians
            choice.chosen[rows] = best.name
            by_rows[rows] = best
    choice.seconds = time.perf_counter() - start
    return ChosenStep(model, by_rows, choice)


def describe_step(step: Any) -> str:
    """How a step computes: the chosen engines of a ``ChosenStep``, else the engine's name."""
    if isinstance(step, ChosenStep):
        return f"auto: {step.choice.describe()}"
    if isinstance(step, OnnxStep):
        return f"onnx×{step.threads}"
    return "eager"
