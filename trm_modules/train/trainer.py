"""Deep-supervision training of a reasoning model (TRM, HRM, any registered architecture) with adaptive
halting (ACT), EMA, checkpoints and DDP.

The loop follows the authors: a batch of *slots* is carried between optimiser steps. Each
optimiser step is one supervision step (``deep_recursion``) of every slot; a slot whose example
halted (its halting logit > 0, or ``halt_max_steps`` reached) is refilled with a new example and its carry
reset. Runs unchanged under ``torchrun --nproc-per-node N`` (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from ..codec import TaskCodec
from ..errors import ConfigError
from ..model import ReasoningModel, count_parameters
from ..plugins import get_architecture, get_codec
from ..views import DEFAULT_VIEWS
from .continuation import RUN_TRAINING_STATE, PackageStart, training_state_bytes
from .data import (
    HELDOUT_SEED_OFFSET,
    AugmentedSampler,
    CurriculumSampler,
    TokenSet,
    calibration_pairs,
    encode_pairs,
    generate_set,
    hard_seed,
    heldout_pairs,
    heldout_seed,
)
from .halting import CALIBRATION_SEED_OFFSET, calibrate_halting
from .evaluate import EvalReport, evaluate, plot_history, plot_report, rule_check_report
from .data_files import FileData, load_file_data, pairs_of
from .recipe import Recipe, recipe_toml
from .run_dir import ARCHITECTURE_FILE

CHECKPOINT = "checkpoint.pt"
#: Examples a run writes to examples.jsonl (the candidates for the package's self-test).
DEFAULT_RUN_EXAMPLES = 4


# ------------------------------------------------------------------------------ pieces
class EMA:
    """Exponential moving average of a model's weights (what gets evaluated and shipped)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[key].lerp_(value.float(), 1.0 - self.decay)
            else:
                self.shadow[key].copy_(value)

    def averaged(self, model: ReasoningModel) -> ReasoningModel:
        """A copy of ``model`` holding the averaged weights."""
        ema_model = copy.deepcopy(model)
        ema_model.load_state_dict({k: v.to(model.H_init.dtype) for k, v in self.shadow.items()})
        return ema_model.eval()


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Linear warm-up, then constant or cosine decay down to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: ReasoningModel, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with β=(0.9, 0.95); the puzzle embedding gets its own learning rate and decay."""
    opt = recipe.train
    puzzle = [p for n, p in model.named_parameters() if n.startswith("puzzle_emb.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("puzzle_emb.")]
    groups = [{"params": rest, "lr": opt.lr, "weight_decay": opt.weight_decay, "base_lr": opt.lr}]
    if puzzle:
        groups.append(
            {
                "params": puzzle,
                "lr": opt.puzzle_emb_lr,
                "weight_decay": opt.puzzle_emb_weight_decay,
                "base_lr": opt.puzzle_emb_lr,
            }
        )
    return torch.optim.AdamW(groups, betas=tuple(opt.betas))


@dataclass
class TrainProgress:
    step: int
    total: int
    loss: float
    accuracy: float  # exact answers among examples that finished this step
    steps_per_s: float
    eval: EvalReport | None = None


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, backend: str) -> "Distributed":
        """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return cls(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def pick_device(requested: str | None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_model_name() -> str:
    """The CPU's marketing name where the OS tells it (Linux /proc/cpuinfo, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_description(device: torch.device, world: int, precision: str = "fp32") -> str:
    """``"AMD EPYC (2 cores), 1 thread"`` or the GPU's name; ``"2 × …"`` for several ranks; ``", bf16 autocast"``
    when trained so."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        threads = torch.get_num_threads()
        name = f"{cpu_model_name()} ({os.cpu_count()} cores), {threads} thread{'s' if threads != 1 else ''}"
    name = f"{world} × {name}" if world > 1 else name
    return name + (", bf16 autocast" if precision == "bf16" else "")


def training_precision(asked: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for a recipe's ``train.precision`` on ``device`` (auto: bf16 on CUDA only)."""
    if asked == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return asked


# ------------------------------------------------------------------------------ trainer
class Trainer:
    """Trains the recipe's model; ``run()`` returns the final evaluation of the EMA weights.

    ``init_weights`` starts from given weights at step 0 (a retrain); ``init_from`` continues a run
    from a package: its EMA, live weights, optimiser moments and step count (``continuation``).
    """

    def __init__(
        self,
        recipe: Recipe,
        out_dir: str | Path,
        device: str | None = None,
        codec: TaskCodec | None = None,
        init_weights: dict[str, torch.Tensor] | None = None,
        extra_train: TokenSet | None = None,
        recipe_path: str | Path | None = None,
        init_from: PackageStart | None = None,
        overrides: dict | None = None,
        data_args: list[str] | None = None,
    ) -> None:
        self.recipe = recipe
        self.recipe_path = recipe_path
        #: The command line's --set overrides and --data files, so the recorded command reproduces the run.
        self.overrides = dict(overrides or {})
        self.data_args = list(data_args or [])
        self.file_data: FileData | None = None
        self.extra_provenance: dict = {}
        self.out_dir = Path(out_dir)
        self.device = pick_device(device)
        self.dist = Distributed.from_env("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda" and self.dist.world > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.precision = training_precision(recipe.train.precision, self.device)
        self.codec = codec or get_codec(recipe.task.codec, recipe.task.params)
        self.architecture = get_architecture(recipe.architecture)
        self.config = recipe.model_config_for(self.codec.vocab_size, self.codec.seq_len)
        if self.config.num_puzzle_identifiers < self.codec.num_puzzle_identifiers:
            self.config = self.config.model_copy(update={"num_puzzle_identifiers": self.codec.num_puzzle_identifiers})
        self.out_dir.mkdir(parents=True, exist_ok=True)

        seed = recipe.train.seed
        torch.manual_seed(seed)  # identical initial weights on every rank
        self.model = self.architecture.build(self.config).to(self.device)
        if init_weights is not None:
            try:
                self.model.load_state_dict(init_weights)
            except RuntimeError as exc:  # shapes differ: a typed error, not a traceback
                first = str(exc).strip().splitlines()[-1].strip()
                raise ConfigError(
                    f"recipe {recipe.name!r} builds a network the starting weights do not fit ({first}); "
                    "its [model] section must describe the network the weights came from"
                ) from exc
        self.ema = EMA(self.model, recipe.train.ema)
        self.optimizer = build_optimizer(self.model, recipe)
        self.step = 0
        self.init_from = init_from
        self.previous_wall_time_s = 0.0
        self.history: list[dict] = []  # held-out exact accuracy by optimiser step, over every sitting
        if init_from is not None:
            self.history = [dict(point) for point in init_from.history]
            init_from.check_fits(self.config, {"codec": self.codec.name, "params": self.codec.params})
            self.ema.shadow = {k: v.to(self.device) for k, v in init_from.restore(self.model, self.optimizer).items()}
            self.step = init_from.step
            self.previous_wall_time_s = init_from.wall_time_s
            self.extra_provenance.update(
                parent_digest=init_from.digest, continued_from=init_from.source, continued_at_step=init_from.step
            )

        data = recipe.data
        cache = self.out_dir / "data"
        if data.from_files:  # every rank reads the files (no cache: a file changed since is read again)
            self.file_data = load_file_data(self.codec, data)
            self.train_set = encode_pairs(self.codec, pairs_of(self.file_data.train))
            self.test_set = encode_pairs(self.codec, pairs_of(self.file_data.heldout))
        elif self.dist.is_main:
            self.train_set = generate_set(
                self.codec, data.train_puzzles, data.seed, data.difficulty, cache / "train.npz"
            )
            self.test_set = generate_set(
                self.codec,
                data.test_puzzles,
                heldout_seed(data),
                data.test_difficulty or data.difficulty,
                cache / "test.npz",
            )
            if data.hard is not None:
                generate_set(self.codec, data.hard.puzzles, hard_seed(data), data.hard.difficulty, cache / "hard.npz")
        self.dist.barrier()
        if not self.dist.is_main and not data.from_files:
            self.train_set = TokenSet.load(cache / "train.npz")
            self.test_set = TokenSet.load(cache / "test.npz")
        self.hard_set = TokenSet.load(cache / "hard.npz") if data.hard is not None else None
        if extra_train is not None:
            self.train_set = TokenSet(
                np.concatenate([self.train_set.inputs, extra_train.inputs]),
                np.concatenate([self.train_set.labels, extra_train.labels]),
                np.concatenate([self.train_set.puzzle_ids, extra_train.puzzle_ids]),
            )
        # A continued run draws other examples than the sitting before it did (seeded by the step too).
        sampler_seed = seed * 7919 + self.dist.rank
        sampler_seeds = [sampler_seed, self.step] if self.step else sampler_seed
        if data.hard is not None and self.hard_set is not None:
            self.sampler: AugmentedSampler = CurriculumSampler(
                self.codec,
                self.train_set,
                self.hard_set,
                sampler_seeds,
                data.hard.share,
                recipe.train.steps,
                augment=data.augment,
            )
        else:
            self.sampler = AugmentedSampler(self.codec, self.train_set, augment=data.augment, seed=sampler_seeds)
        torch.manual_seed(seed * 104729 + self.dist.rank + 1_000_003 * self.step)  # exploration draws differ per rank
        self.local_batch = max(1, recipe.train.batch_size // self.dist.world)

    # -- checkpointing -----------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not self.dist.is_main:
            return
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.shadow,
            "optimizer": self.optimizer.state_dict(),
            "sampler": json.dumps(self.sampler.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
        }
        tmp = self.out_dir / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out_dir / CHECKPOINT)

    def load_checkpoint(self) -> bool:
        path = self.out_dir / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.shadow = {k: v.float() for k, v in state["ema"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        if self.dist.is_main:
            self.sampler.rng.bit_generator.state = json.loads(state["sampler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        return True

    # -- the loop -----------------------------------------------------------------------
    def run(
        self,
        resume: bool = False,
        on_progress: Callable[[TrainProgress], None] | None = None,
        max_seconds: float | None = None,
    ) -> EvalReport:
        """Train up to ``train.steps`` (continuing a checkpoint when ``resume``); ``max_seconds`` ends this
        sitting earlier, after the first step past it, with the run directory written as at the end."""
        cfg, opt = self.config, self.recipe.train
        if resume:
            self.load_checkpoint()
        model = self.model
        net = model
        if self.dist.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        B, L = self.local_batch, cfg.seq_len
        tokens = torch.zeros(B, L, dtype=torch.long, device=self.device)
        labels = torch.zeros(B, L, dtype=torch.long, device=self.device)
        ids = torch.zeros(B, dtype=torch.long, device=self.device)
        steps_done = torch.zeros(B, dtype=torch.long, device=self.device)
        halted = torch.ones(B, dtype=torch.bool, device=self.device)
        carry = model.initial_carry(B)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        t0, step0 = time.perf_counter(), self.step
        finished_ok = finished = 0
        final = None
        model.train()
        while self.step < opt.steps:
            # Refill the slots whose example halted, and reset their carry.
            if bool(halted.any()):
                rows = halted.nonzero().squeeze(-1)
                new_tokens, new_labels, new_ids = self.sampler.draw(len(rows), self.step)
                tokens[rows] = new_tokens.to(self.device)
                labels[rows] = new_labels.to(self.device)
                ids[rows] = new_ids.to(self.device)
                steps_done[rows] = 0
                carry = model.reset_carry(carry, halted)

            factor = lr_factor(self.step, opt.warmup_steps, opt.steps, opt.schedule, opt.min_lr_ratio)
            for group in self.optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor

            with autocast:
                out = net(tokens, ids, carry)
                loss, metrics = model.supervision_loss(
                    out,
                    labels,
                    tokens=tokens,
                    puzzle_ids=ids,
                    is_last=steps_done + 1 >= cfg.halt_max_steps,
                    kind=opt.loss,
                    halt_weight=opt.halt_loss_weight,
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opt.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
            self.optimizer.step()
            self.ema.update(model)
            self.step += 1

            with torch.no_grad():
                carry = out.carry
                steps_done += 1
                is_last = steps_done >= cfg.halt_max_steps
                halt_now = model.halting_logit(out).detach() > 0
                explore = torch.rand(B, device=self.device) < cfg.halt_exploration_prob
                # The authors' exploration draws a minimum of 2..halt_max_steps steps; with one step there is none.
                min_steps = explore * torch.randint(
                    min(2, cfg.halt_max_steps), cfg.halt_max_steps + 1, (B,), device=self.device
                )
                halted = is_last | (halt_now & (steps_done >= min_steps))
                finished += int(halted.sum())
                finished_ok += int((halted & metrics["seq_correct"]).sum())

            report = None
            out_of_time = max_seconds is not None and time.perf_counter() - t0 >= max_seconds
            if self.dist.world > 1 and max_seconds is not None:  # every rank stops at the same step
                flag = torch.tensor(float(out_of_time), device=self.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag.item())
            last = self.step == opt.steps or out_of_time
            if self.dist.is_main and (self.step % opt.eval_every == 0 or last):
                evaluation_set = self.test_set if last else self.test_set.head(opt.eval_puzzles)
                report = evaluate(
                    self.ema.averaged(model),
                    evaluation_set,
                    device=self.device,
                    answer_table=self.codec.answer_token_table(),
                )
                self.history.append(
                    {
                        "step": self.step,
                        "exact": report.accuracy_all_steps,
                        "exact_halting": report.accuracy_halting,
                        "puzzles": report.puzzles,
                        "wall_time_s": round(self.previous_wall_time_s + time.perf_counter() - t0, 1),
                    }
                )
                final = report if last else None
                model.train()
            if self.step % opt.eval_every == 0 or last:
                self.save_checkpoint()
            if on_progress and self.dist.is_main and (self.step % 10 == 0 or report is not None):
                elapsed = time.perf_counter() - t0
                on_progress(
                    TrainProgress(
                        step=self.step,
                        total=opt.steps,
                        loss=float(loss.detach()),
                        accuracy=finished_ok / max(1, finished),
                        steps_per_s=(self.step - step0) / max(elapsed, 1e-9),
                        eval=report,
                    )
                )
                finished_ok = finished = 0
            if out_of_time:
                break
        self.wall_time_s = time.perf_counter() - t0
        if self.dist.is_main and final is None:  # nothing left to train (or a resumed, finished run)
            final = evaluate(
                self.ema.averaged(model),
                self.test_set,
                device=self.device,
                answer_table=self.codec.answer_token_table(),
            )
        if self.dist.is_main:
            self.write_run(final)
        self.dist.barrier()
        return final

    # -- outputs ------------------------------------------------------------------------
    def recipe_toml(self) -> str:
        """The recipe exactly as run (every override and data file applied), as TOML."""
        return recipe_toml(self.recipe)

    def command(self) -> str:
        """The `trm train` command line of this run, with its --set and --data (empty when the recipe has no file)."""
        if not self.recipe_path:
            return ""
        line = f"trm train {shlex.quote(str(self.recipe_path))} -o {shlex.quote(str(self.out_dir))}"
        for key, value in self.overrides.items():
            line += f" --set {shlex.quote(f'{key}={json.dumps(value)}')}"
        for name in self.data_args:
            line += f" --data {shlex.quote(name)}"
        if self.init_from is not None:
            line += f" --init-from {shlex.quote(self.init_from.path)}"
        return line

    def _calibration_pairs(self) -> tuple[list, str]:
        """Pairs to calibrate halting on (never the test set) and how to name them."""
        data = self.recipe.data
        if self.file_data is not None:
            pairs = pairs_of(self.file_data.calibration)
            return pairs, f"{len(pairs)} calibration rows set aside from the training files"
        pairs = calibration_pairs(self.codec, data)
        return pairs, f"{len(pairs)} calibration puzzles (seed {heldout_seed(data)} + {CALIBRATION_SEED_OFFSET})"

    def _heldout_inputs(self) -> list:
        if self.file_data is not None:
            return [row.input for row in self.file_data.heldout]
        return [inp for inp, _ in heldout_pairs(self.codec, self.recipe.data)]

    def write_run(self, report: EvalReport) -> None:
        """Write the run directory that ``trm pack`` turns into a package."""
        out = self.out_dir
        ema_model = self.ema.averaged(self.model).cpu()
        state = {k: v.contiguous() for k, v in ema_model.state_dict().items()}
        save_file(state, out / "model.safetensors")
        # What `trm pack --training-state` carries, so a later sitting continues with --init-from.
        (out / RUN_TRAINING_STATE).write_bytes(training_state_bytes(self.model, self.optimizer, self.step))
        (out / "config.json").write_text(self.config.model_dump_json(indent=2))
        (out / ARCHITECTURE_FILE).write_text(json.dumps({"name": self.architecture.name}))
        (out / "task.json").write_text(json.dumps({"codec": self.codec.name, "params": self.codec.params}, indent=2))
        data = self.recipe.data
        if self.file_data is not None:
            dataset = (
                f"{len(self.test_set)} held-out rows of the data files "
                f"({', '.join(r.name for r in self.file_data.records if r.role == 'heldout') or 'a seeded split'})"
            )
        else:
            dataset = (
                f"{len(self.test_set)} freshly generated held-out puzzles "
                f"(seed {heldout_seed(data)}, {json.dumps(data.test_difficulty or data.difficulty)})"
            )
        evaluation = {
            "dataset": dataset,
            "metric": "exact_accuracy",
            "value": report.accuracy_all_steps,
            "steps": self.config.halt_max_steps,
            **report.to_json(),
        }
        # The halting policy the package will carry, chosen on calibration puzzles (not the test set).
        calibration, calibration_name = self._calibration_pairs()
        halting = calibrate_halting(
            ema_model,
            self.codec,
            [inp for inp, _ in calibration],
            [out for _, out in calibration],
            dataset=calibration_name,
        )
        evaluation["halting"] = halting
        ema_model.use_halting(halting["threshold"], halting["min_steps"])
        # As `trm solve` answers (calibrated halting, test-time views), judged by the task's rules.
        ruled = rule_check_report(ema_model, self.codec, self._heldout_inputs(), views=DEFAULT_VIEWS)
        if ruled is not None:
            evaluation["rule_check"] = ruled.to_json()
        if data.hard is not None and data.hard.test_puzzles:
            hard_pairs = self.codec.generate(
                np.random.default_rng(hard_seed(data) + HELDOUT_SEED_OFFSET),
                data.hard.test_puzzles,
                **data.hard.difficulty,
            )
            hard_report = evaluate(
                ema_model,
                encode_pairs(self.codec, hard_pairs),
                device="cpu",
                answer_table=self.codec.answer_token_table(),
            )
            hard_ruled = rule_check_report(ema_model, self.codec, [inp for inp, _ in hard_pairs], views=DEFAULT_VIEWS)
            evaluation["hard_heldout"] = {
                "dataset": f"{len(hard_pairs)} freshly generated hard held-out puzzles "
                f"(seed {hard_seed(data) + HELDOUT_SEED_OFFSET}, {json.dumps(data.hard.difficulty)})",
                **hard_report.to_json(),
                **({"rule_check": hard_ruled.to_json()} if hard_ruled is not None else {}),
            }
        (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
        training = {
            "recipe": str(self.recipe_path or self.recipe.name),
            "command": self.command(),
            # Across sittings: the package this run continued from counted its own time.
            "wall_time_s": round(self.previous_wall_time_s + getattr(self, "wall_time_s", 0.0), 1),
            "hardware": hardware_description(self.device, self.dist.world, self.precision),
            "data": self.file_data.describe()
            if self.file_data is not None
            else f"{len(self.train_set)} generated training puzzles ({json.dumps(data.difficulty)})"
            + (
                f" and {len(self.hard_set)} hard ones ({json.dumps(data.hard.difficulty)}; share "
                f"{data.hard.share[0]:.0%} → {data.hard.share[1]:.0%} over the schedule)"
                if data.hard is not None and self.hard_set is not None
                else ""
            )
            + f", {'augmented on the fly' if data.augment else 'no augmentation'}",
            # Each data file by name, SHA-256 and row count (Hugging Face datasets' way of naming data).
            "data_files": [r.to_json() for r in self.file_data.records] if self.file_data is not None else None,
            "optimizer_steps": self.step,
            "parameters": count_parameters(self.model),
            "torch": torch.__version__,
            "history": self.history,
            # The recipe travels inside the package so a maintainer can retrain from the package alone.
            "recipe_toml": self.recipe_toml(),
            **self.extra_provenance,
        }
        (out / "training.json").write_text(json.dumps(training, indent=2))
        rng = np.random.default_rng(data.seed + 17)
        if self.file_data is not None:  # the package's self-test examples: held-out rows, answers as given
            examples = pairs_of(self.file_data.heldout[:DEFAULT_RUN_EXAMPLES])
        else:
            examples = self.codec.generate(rng, DEFAULT_RUN_EXAMPLES, **(data.test_difficulty or data.difficulty))
        with open(out / "examples.jsonl", "w", encoding="utf-8") as fh:
            for inp, outp in examples:
                fh.write(json.dumps({"input": inp, "output": outp}) + "\n")
        plot_report(report, out, title=self.recipe.name)
        plot_history(self.history, out, title=self.recipe.name)


def train(
    recipe: Recipe,
    out_dir: str | Path,
    device: str | None = None,
    resume: bool = False,
    on_progress: Callable[[TrainProgress], None] | None = None,
) -> EvalReport:
    """Train ``recipe`` into ``out_dir`` (a run directory for ``trm pack``); see ``Trainer``."""
    return Trainer(recipe, out_dir, device=device).run(resume=resume, on_progress=on_progress)
