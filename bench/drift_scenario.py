"""Drift scenario: what teachers' feedback is worth, against a control retrained the same way without it.

    pip install -e '.[bench]'
    nice -n 10 python bench/drift_scenario.py [--seeds 0 1 2] [--steps 250] [--in-use 1000] [--heldout 300]

The base is the released ``maze-9x9`` 1.0.0, good on its own distribution (mazes whose corridors touch
the grid's edge, the only kind its recipe drew) and weak on a shifted one: mazes with a wall all around
and corridors on odd coordinates, the way most people draw them. For each seed:

1. **In use.** A Host serves 1.0.0 (first answer, ``views=1``) with the store plugin recording every
   solve (SQLite); learners bring ``--in-use`` shifted mazes (the project's generator, ``enclosed=1``,
   ``parity="odd"``).
2. **Simulated teachers**, through ``Host.feedback``: a share (``--silent``) gives no feedback; the
   others confirm a right answer (``correct``) or send a ``correction`` with the right path for a wrong
   one, of which a share (``--wrong-corrections``) is itself wrong (one path cell left unmarked).
3. **Export** with ``solver_labels=False``: labels only from confirmations and corrections (a wrong
   correction is refused by the codec's rules; no failure is labelled by the built-in solver).
4. **Two arms** through the product's retrain (``trm_modules.lifecycle.retrain``), same base, same seed,
   same steps, same optimiser and schedule, same recipe data: *feedback* (half the draws from the
   exported set) and *control* (``feedback_dir=None``: the recipe's own data only).
5. **Judged by the rules, first answer** (``answer_documents(views=1)``, each arm with the halting
   policy its run calibrated), on fixed held-out sets: shifted mazes from two generators that share no
   code with training (``bench/outside_generators.py``: ``mazelib``, ``mazes``), shifted mazes from the
   project's generator (fresh seed), and the base distribution (forgetting).

Lift attributable to feedback = feedback arm − control arm, per seed; mean ± sd over seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outside_generators import MAZE_GENERATORS  # noqa: E402

from trm_modules.host import Host  # noqa: E402
from trm_modules.host.sources import FolderSource  # noqa: E402
from trm_modules.package import open_package  # noqa: E402
from trm_modules.package.task_schema import task_validator  # noqa: E402
from trm_modules.records import FeedbackEvent, SolveContext  # noqa: E402
from trm_modules.solving import ModelAnswer, answer_documents  # noqa: E402
from trm_modules.store import Store  # noqa: E402
from trm_modules.store.export import export_feedback_dataset  # noqa: E402
from trm_modules.store.plugin import StorePlugin  # noqa: E402
from trm_modules.train.recipe import Recipe  # noqa: E402
from trm_modules.lifecycle.retrain import recipe_of, retrain  # noqa: E402
from trm_modules.train.run_dir import load_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "registry" / "packages" / "maze-9x9" / "maze-9x9-1.0.0.trm"
#: The shift: every maze enclosed by a wall, carved corridors on odd coordinates.
SHIFT = {"enclosed": 1.0, "parity": "odd"}
HELDOUT_SEED = 424242
SETS = ("mazelib", "mazes", "shifted", "base")
SET_TITLES = {
    "mazelib": "shifted, mazelib (outside)",
    "mazes": "shifted, mazes (outside)",
    "shifted": "shifted, project generator",
    "base": "base distribution",
}


def first_answer_valid(model, codec, validator, documents: list[dict]) -> float:
    """Share of documents whose first answer (``--views 1``) the codec's rules accept."""
    results = answer_documents(model, codec, validator, documents, views=1)
    return sum(isinstance(r, ModelAnswer) and r.valid is True for r in results) / len(documents)


def scores(model, codec, validator, heldout: dict[str, list[dict]]) -> dict[str, float]:
    out = {name: first_answer_valid(model, codec, validator, docs) for name, docs in heldout.items()}
    out["outside"] = (out["mazelib"] * len(heldout["mazelib"]) + out["mazes"] * len(heldout["mazes"])) / (
        len(heldout["mazelib"]) + len(heldout["mazes"])
    )
    return out


def arm_model(run_dir: Path):
    """The retrained EMA model of a run, with the halting policy the run calibrated (as it would be packed)."""
    model, _codec = load_run(run_dir)
    halting = json.loads((run_dir / "evaluation.json").read_text()).get("halting") or {}
    if halting:
        model.use_halting(halting.get("threshold"), halting.get("min_steps", 1))
    return model


def wrong_correction(answer: dict, rng: np.random.Generator) -> dict:
    """A teacher's mistaken correction: the right path with one of its cells left unmarked."""
    grid = [list(row) for row in answer["grid"]]
    cells = [(r, c) for r, row in enumerate(grid) for c, ch in enumerate(row) if ch == "o"]
    r, c = cells[int(rng.integers(len(cells)))]
    grid[r][c] = "."
    return {"grid": ["".join(row) for row in grid]}


def in_use(work: Path, base, codec, difficulty: dict, seed: int, args) -> dict[str, int]:
    """Serve the base on shifted mazes with the store recording; simulated teachers give feedback."""
    packages = work / "packages"
    packages.mkdir(parents=True)
    shutil.copy(BASE, packages / BASE.name)
    store = StorePlugin.open(str(work / "store.sqlite"))
    host = Host([FolderSource(packages, trusted_keys=ROOT / "registry" / "keys")], views=1, cpu_threads=1)
    host.pm.register(store, name="drift-store")
    name = base.manifest.name
    host.swap(name, base.manifest.version)
    inputs = [inp for inp, _ in codec.generate(np.random.default_rng(1000 + seed), args.in_use, **difficulty)]
    answers = host.solve_many(name, inputs, SolveContext(platform="demo-lms", course="mazes-101"))
    teachers = np.random.default_rng(2000 + seed)
    counts = {
        "answers": len(answers),
        "answers_valid": 0,
        "silent": 0,
        "confirmations_sent": 0,
        "corrections_sent": 0,
        "wrong_corrections_sent": 0,
    }
    for number, (inp, answer) in enumerate(zip(inputs, answers)):
        valid = bool(codec.check(inp, answer.output))
        counts["answers_valid"] += valid
        if teachers.random() < args.silent:
            counts["silent"] += 1
            continue
        teacher = f"teacher-{number % 7}"
        if valid:
            event = FeedbackEvent(solve_id=answer.solve_id, kind="correct", actor=teacher)
            counts["confirmations_sent"] += 1
        else:
            right = codec.reference_solution(inp)  # what the teacher knows; it reaches the store as a correction
            if teachers.random() < args.wrong_corrections:
                right = wrong_correction(right, teachers)
                counts["wrong_corrections_sent"] += 1
            event = FeedbackEvent(solve_id=answer.solve_id, kind="correction", corrected_output=right, actor=teacher)
            counts["corrections_sent"] += 1
        host.feedback(event)
    host.flush()
    host.close()
    store.close()
    return counts


def seeded_recipe(base, seed: int, test_puzzles: int) -> Recipe:
    data = recipe_of(base).model_dump()
    data["data"]["seed"] = seed
    data["data"]["test_puzzles"] = test_puzzles
    data["train"]["seed"] = seed
    return Recipe.model_validate(data)


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):6.1%} ± {sd:5.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/drift")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=250, help="Retrain steps of each arm.")
    parser.add_argument("--in-use", type=int, default=1000, help="Shifted mazes answered in use per seed.")
    parser.add_argument("--heldout", type=int, default=300, help="Mazes per held-out set.")
    parser.add_argument(
        "--test-puzzles",
        type=int,
        default=300,
        help="Recipe held-out puzzles of each retrain (its not-worse gate and halting calibration).",
    )
    parser.add_argument("--silent", type=float, default=0.5, help="Share of answers no teacher gives feedback on.")
    parser.add_argument("--wrong-corrections", type=float, default=0.05, help="Share of corrections that are wrong.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - t0:5.0f}s] {text}", flush=True)

    base = open_package(BASE, trusted_keys=ROOT / "registry" / "keys")
    codec, validator = base.codec(), task_validator(base.input_schema)
    base_difficulty = dict(recipe_of(base).data.difficulty)
    shifted = {**base_difficulty, **SHIFT}
    heldout = {name: make(codec.size, args.heldout, HELDOUT_SEED) for name, make in MAZE_GENERATORS.items()}
    heldout["shifted"] = [i for i, _ in codec.generate(np.random.default_rng(HELDOUT_SEED), args.heldout, **shifted)]
    heldout["base"] = [
        i for i, _ in codec.generate(np.random.default_rng(HELDOUT_SEED + 1), args.heldout, **base_difficulty)
    ]
    base_scores = scores(base.load_model(), codec, validator, heldout)
    say(
        f"base {base.manifest.name} {base.manifest.version}, first answer valid on {args.heldout} held-out mazes each: "
        + ", ".join(f"{SET_TITLES[k]} {base_scores[k]:.1%}" for k in SETS)
    )
    say(f"shift in use: {json.dumps(shifted)}")

    runs = []
    for seed in args.seeds:
        seed_dir = work / f"seed-{seed}"
        counts = in_use(seed_dir, base, codec, shifted, seed, args)
        summary = export_feedback_dataset(
            Store(str(seed_dir / "store.sqlite")),
            base.manifest.name,
            seed_dir / "feedback",
            codec=codec,
            solver_labels=False,
        )
        labels = {
            "confirmed": summary.counts["confirmed"],
            "correction": summary.counts["correction"],
            "solver": summary.counts["solver"],
            **{f"excluded_{k}": v for k, v in summary.excluded.items()},
        }
        say(
            f"seed {seed}: {counts['answers']} shifted mazes in use, first answer valid {counts['answers_valid']}; "
            f"silent {counts['silent']}, confirmations sent {counts['confirmations_sent']}, corrections sent "
            f"{counts['corrections_sent']} ({counts['wrong_corrections_sent']} wrong); exported labels {labels}"
        )
        recipe = seeded_recipe(base, seed, args.test_puzzles)
        arms = {}
        for arm, feedback_dir in (("feedback", seed_dir / "feedback"), ("control", None)):
            result = retrain(base, feedback_dir, seed_dir / arm, steps=args.steps, recipe=recipe)
            arms[arm] = {
                "scores": scores(arm_model(seed_dir / arm), codec, validator, heldout),
                "accepted": result.accepted,
                "reason": result.reason,
                "feedback_examples": result.feedback_examples,
            }
            say(
                f"seed {seed} {arm:>8} arm ({args.steps} steps, retrain gate: {'accepted' if result.accepted else 'refused'}"
                f"): " + ", ".join(f"{k} {arms[arm]['scores'][k]:.1%}" for k in (*SETS, "outside"))
            )
        runs.append({"seed": seed, "in_use": counts, "labels": labels, **arms})

    print()
    print(
        f"{'first answer valid':<30} {'base 1.0.0':>10} {'control (mean ± sd)':>20} {'feedback (mean ± sd)':>21} "
        f"{'lift = feedback - control':>26} {'ratio':>6}"
    )
    for key in ("outside", *SETS):
        control = [r["control"]["scores"][key] for r in runs]
        feedback = [r["feedback"]["scores"][key] for r in runs]
        lift = [f - c for f, c in zip(feedback, control)]
        title = SET_TITLES.get(key, "shifted, both outside generators")
        ratio = float(np.mean(feedback)) / max(float(np.mean(control)), 1e-9)  # feedback arm vs its control
        print(
            f"{title:<30} {base_scores[key]:>10.1%} {mean_sd(control):>20} {mean_sd(feedback):>21} "
            f"{mean_sd(lift):>26} {ratio:>5.2f}x"
        )
    print(
        "per-seed lift on the outside generators: "
        + ", ".join(
            f"seed {r['seed']} {r['feedback']['scores']['outside'] - r['control']['scores']['outside']:+.1%}"
            for r in runs
        )
    )
    totals = {k: sum(r["labels"].get(k, 0) for r in runs) for k in sorted({k for r in runs for k in r["labels"]})}
    print(f"labels over {len(runs)} seeds: {totals}")
    say(f"done ({len(runs)} seeds x 2 arms x {args.steps} steps, {torch.get_num_threads()} thread)")
    (work / "results.json").write_text(json.dumps({"args": vars(args), "base": base_scores, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
