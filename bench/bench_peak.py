"""How close one supervision step (and one training step) comes to this machine's own GEMM peak.

In one process: the fp32 and bf16 GEMM peak (n³ products, 1 thread and all cores), then for each
registry module and paper preset the achieved GFLOP/s of one supervision step at batch 1 and 16 on
1 thread and all cores, eager and (where installed) ONNX Runtime, each as a % of the fp32 peak on
the same threads; then a training step (forward, backward, AdamW) of one model. FLOPs are counted
analytically (matrix products only: projections, attention scores, heads) and checked against
torch's ``FlopCounterMode`` for every row. Rounds are interleaved and medians reported, with the
load average beside them: the machine is shared. Where the machine has several cores, a step with the
batch's rows split across one single-threaded worker per core (the ``auto`` engine's ``÷N`` candidates)
is timed too. At the end, each goal of issue #26 is printed as met or not, with the figure that decides it.

    python bench/bench_peak.py                      # registry modules + paper presets
    python bench/bench_peak.py --quick              # registry modules, batch 1 only (a smoke run)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from trm_modules.model import PRESETS, TRM, TRMConfig
from trm_modules.model.engine_choice import Candidate
from trm_modules.model.config import swiglu_intermediate
from trm_modules.model.precision import all_cores, gemm_gflops
from trm_modules.package.open import open_package

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["sudoku-9x9/sudoku-9x9-1.0.0.trm", "maze-9x9/maze-9x9-1.2.0.trm", "sudoku-4x4/sudoku-4x4-1.0.1.trm"]


def step_flops(config: TRMConfig, batch: int) -> float:
    """Matrix-product FLOPs of one supervision step (``deep_recursion``) at ``batch`` rows."""
    S, D = config.total_len, config.hidden_size
    inter = swiglu_intermediate(D, config.expansion)
    per_layer = 2 * S * (D * 2 * inter + inter * D)  # channel SwiGLU
    if config.mlp_t:
        inter_t = swiglu_intermediate(S, config.expansion)
        per_layer += 2 * D * (S * 2 * inter_t + inter_t * S)  # sequence-axis SwiGLU
    else:
        per_layer += 2 * S * (D * 3 * D + D * D) + 2 * 2 * S * S * D  # qkv, o, QK^T and AV
    applications = config.H_cycles * (config.L_cycles + 1)
    heads = 2 * S * D * config.vocab_size + 2 * D * 2  # lm_head runs on every position
    return float(batch * (applications * config.L_layers * per_layer + heads))


def attention_score_flops(config: TRMConfig, batch: int) -> float:
    """The QK^T and AV share of ``step_flops`` (0 for the sequence-MLP mixer)."""
    if config.mlp_t:
        return 0.0
    applications = config.H_cycles * (config.L_cycles + 1) * config.L_layers
    return float(batch * applications * 4 * config.total_len**2 * config.hidden_size)


def counted_flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def timed(fn, rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def with_threads(threads: int, fn):
    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(previous)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="registry modules at batch 1 only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gemm", type=int, default=1024, help="GEMM size n of the peak (n³)")
    parser.add_argument("--presets", default="paper-sudoku-attn,paper-sudoku-mlp")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--batches", default="1,16", help="batch sizes of the registry modules")
    parser.add_argument("--preset-batches", default="1,16", help="batch sizes of the paper presets")
    args = parser.parse_args()
    cores = all_cores()
    threads = sorted({1, cores})
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, {cores} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    peak: dict[tuple[str, int], float] = {}
    for t in threads:
        peak["fp32", t] = with_threads(t, lambda: gemm_gflops(args.gemm, torch.float32, min_seconds=0.3))()
        peak["bf16", t] = with_threads(
            t, lambda: gemm_gflops(min(args.gemm, 256), torch.bfloat16, min_seconds=0.0, repeats=1)
        )()
        print(
            f"GEMM peak, {t} thread(s): fp32 {peak['fp32', t]:.1f} GFLOP/s ({args.gemm}³), "
            f"bf16 {peak['bf16', t]:.2f} GFLOP/s ({min(args.gemm, 256)}³) = {peak['bf16', t] / peak['fp32', t]:.3f}× fp32"
        )

    models: list[tuple[str, TRM, tuple[int, ...]]] = []
    module_batches = (1,) if args.quick else tuple(int(b) for b in args.batches.split(","))
    preset_batches = tuple(int(b) for b in args.preset_batches.split(","))
    for relative in MODULES:
        pkg = open_package(ROOT / "registry" / "packages" / relative)
        models.append((f"{pkg.name} {pkg.version}", pkg.load_model("cpu"), module_batches))
    if not args.quick:
        for name in filter(None, args.presets.split(",")):
            torch.manual_seed(0)
            models.append((name, TRM(PRESETS[name]).eval(), preset_batches))

    try:
        from trm_modules.model.onnx_step import OnnxStep, export_step_graph

        have_onnx = True
    except ImportError:  # pragma: no cover
        have_onnx = False

    splits = cores > 1
    engines = ["eager"] + (["onnx"] if have_onnx else [])
    columns = [f"{e} {t}" for e in engines for t in threads] + ([f"{e} ÷{cores}" for e in engines] if splits else [])
    print(
        "\n| work | batch | FLOP/step (analytic = FlopCounterMode) | "
        + " | ".join(f"{c.replace(' ÷', ' split ÷')}{'' if '÷' in c else 'T'} GFLOP/s (% peak)" for c in columns)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(columns))
    achieved: dict[tuple[str, int], dict[str, float]] = {}  # (work, batch) → column → GFLOP/s
    for label, model, batches in models:
        config = model.config
        sessions = {}
        if have_onnx:
            try:
                graph = export_step_graph(model)
                sessions = {t: OnnxStep(model, threads=t, graph=graph) for t in threads}
            except Exception as exc:  # noqa: BLE001
                print(f"  ({label}: no ONNX step: {exc})")
        for batch in batches:
            with torch.inference_mode():
                tokens = torch.randint(1, config.vocab_size, (batch, config.seq_len))
                x = model.input_embeddings(tokens, torch.zeros(batch, dtype=torch.long))
                carry = model.initial_carry(batch)
                analytic = step_flops(config, batch)
                counted = counted_flops(lambda: model.deep_recursion(x, carry))
                work = {f"eager {t}": with_threads(t, lambda: model.deep_recursion(x, carry)) for t in threads}
                work.update({f"onnx {t}": (lambda s=s: s(x, carry)) for t, s in sessions.items()})
                if splits and batch >= cores:  # rows split across one single-threaded worker per core
                    for engine, onnx in [("eager", None)] + ([("onnx", sessions[1])] if 1 in sessions else []):
                        split = Candidate(engine, 1, onnx, workers=cores)
                        work[f"{engine} ÷{cores}"] = lambda split=split: split.run(model, x, carry)
                samples: dict[str, list[float]] = {k: [] for k in work}
                for fn in work.values():
                    fn()  # warm-up
                for r in range(args.rounds):  # interleaved rounds
                    for key, fn in work.items():
                        t0 = time.perf_counter()
                        fn()
                        samples[key].append(time.perf_counter() - t0)
            cells = []
            achieved[label, batch] = {}
            for key in columns:
                if key not in work:
                    cells.append("—")
                    continue
                t = cores if "÷" in key else int(key.split()[1])
                gflops = analytic / statistics.median(samples[key]) / 1e9
                achieved[label, batch][key] = gflops
                cells.append(f"{gflops:.1f} ({100 * gflops / peak['fp32', t]:.0f} %)")
            check = "=" if abs(counted - analytic) <= 1e-6 * analytic else f"≠ {counted:.3e}"
            if check != "=" and abs(counted + attention_score_flops(config, batch) - analytic) <= 1e-6 * analytic:
                check = "= (+ attention scores, which FlopCounterMode does not count in the CPU flash kernel)"
            print(f"| {label} | {batch} | {analytic:.3e} {check} | " + " | ".join(cells) + " |", flush=True)

    if not args.no_train:
        from trm_modules.train.losses import deep_supervision_loss

        pkg = open_package(ROOT / "registry" / "packages" / MODULES[0])
        model = pkg.load_model("cpu").train()
        config = model.config
        batch = 64
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        tokens = torch.randint(1, config.vocab_size, (batch, config.seq_len))
        labels = torch.randint(1, config.vocab_size, (batch, config.seq_len))
        ids = torch.zeros(batch, dtype=torch.long)

        def train_step(precision: str = "fp32") -> None:
            carry = model.initial_carry(batch)
            context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.no_grad()
            if precision == "fp32":
                context = torch.enable_grad()
            with context:
                out = model(tokens, ids, carry)
                loss, _ = deep_supervision_loss(out.logits, labels, out.q_halt, "softmax", 0.5)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        train_rate: dict[int, float] = {}
        train_rate_bf16: dict[int, float] = {}
        counted = counted_flops(train_step)
        print(
            f"\ntraining step {pkg.name} {pkg.version}, batch {batch}: {counted / 1e9:.1f} GFLOP "
            f"(FlopCounterMode: forward of all cycles + backward of the last)"
        )
        for t in threads:
            seconds = timed(with_threads(t, train_step), max(1, args.rounds - 1))
            gflops = counted / seconds / 1e9
            train_rate[t] = 1 / seconds
            print(
                f"  fp32, {t} thread(s): {1 / seconds:.2f} steps/s, {gflops:.1f} GFLOP/s "
                f"({100 * gflops / peak['fp32', t]:.0f} % of the fp32 peak)",
                flush=True,
            )
        if peak["bf16", 1] >= 0.5 * peak["fp32", 1]:
            for t in threads:
                seconds = timed(with_threads(t, lambda: train_step("bf16")), max(1, args.rounds - 1))
                train_rate_bf16[t] = 1 / seconds
                print(
                    f"  bf16 autocast (fp32 master weights), {t} thread(s): {1 / seconds:.2f} steps/s, "
                    f"{train_rate_bf16[t] / train_rate[t]:.2f}× fp32",
                    flush=True,
                )
        else:
            print(
                f"  bf16 autocast: not timed here when the bf16 GEMM is {peak['bf16', 1] / peak['fp32', 1]:.3f}× "
                f"fp32 (a step would take ~{counted / (peak['bf16', 1] * 1e9):.0f} s)"
            )
    else:
        train_rate, train_rate_bf16 = {}, {}
    print_goals(peak, achieved, train_rate, train_rate_bf16, cores)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


#: Issue #26's training figures measured before its work (sudoku-9x9, batch 64, fp32): steps/s per thread count.
TRAINING_BEFORE = {1: 0.60, 2: 1.06}


def print_goals(
    peak: dict[tuple[str, int], float],
    achieved: dict[tuple[str, int], dict[str, float]],
    train_rate: dict[int, float],
    train_rate_bf16: dict[int, float],
    cores: int,
) -> None:
    """Each goal of issue #26, met or not, decided by this run's own figures."""
    print("\nGoals (issue #26), from the figures above:")
    bf16_ratio = peak["bf16", cores] / peak["fp32", cores]
    capability = torch.backends.cpu.get_cpu_capability()
    best16 = [
        (100 * max((g for k, g in row.items()), default=0) / peak["fp32", cores], label)
        for (label, batch), row in achieved.items()
        if batch == 16
    ]
    if best16:
        share, label = max(best16)
        print(
            f"- batch 16 at ≥ 85 % of the fp32 peak on all cores: {'met' if share >= 85 else 'not met'} "
            f"(best {share:.0f} %, {label}; peak {peak['fp32', cores]:.1f} GFLOP/s on {cores} cores)"
        )
    print(
        f"- or bf16 ≥ 1.5× fp32 at no accuracy loss: {'possible' if bf16_ratio >= 1.5 else 'not met'} "
        f"(bf16 GEMM = {bf16_ratio:.3f}× fp32 here; CPU capability {capability}"
        + (f"; bf16 on 1 thread {peak['bf16', 1] / peak['fp32', 1]:.2f}×" if cores > 1 else "")
        + "; whether answers hold is each package's evaluation.precision.bf16)"
    )
    for (label, batch), row in achieved.items():
        if batch != 1 or "eager 1" not in row:
            continue
        all_cores_best = max((g for k, g in row.items() if not k.endswith(" 1")), default=0.0)
        ratio = all_cores_best / row["eager 1"]
        print(
            f"- batch 1 on all cores ≥ 1.6× one core, {label}: {'met' if ratio >= 1.6 else 'not met'} "
            f"({ratio:.2f}× eager on 1 thread)"
        )
    if train_rate:
        best = max([*train_rate.values(), *train_rate_bf16.values()])
        before = TRAINING_BEFORE.get(cores, TRAINING_BEFORE[1])
        print(
            f"- training ≥ 1.4× the steps/s before (fp32 {before:.2f} on {cores} thread(s), measured when the issue "
            f"was filed): {'met' if best >= 1.4 * before else 'not met'} ({best:.2f} steps/s now, "
            f"{best / before:.2f}×; best of fp32 and bf16 autocast on 1 and all threads)"
        )


if __name__ == "__main__":
    main()
