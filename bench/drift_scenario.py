"""Drift scenario, end to end: easy-trained module → harder puzzles in use → feedback → retrain.

    python bench/drift_scenario.py [--workdir runs/drift] [--base-steps 800] [--retrain-steps 800]

1. Train a 4×4 Sudoku module on *easy* puzzles only (many givens) and pack it (v1.0.0).
2. Serve it from a Host whose solves are recorded by the store plugin (SQLite), and use it on
   *harder* puzzles (few givens). A teacher marks each answer correct/incorrect (the codec's
   rule check stands in for the teacher) through ``Host.feedback``.
3. Export the feedback (``export_feedback_dataset``: confirmed answers + solver answers for the
   failures) and ``retrain`` from the package's weights on it mixed with the recipe's data.
4. Compare old vs new on a fresh held-out set of harder puzzles, and on the easy held-out set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from trm_modules.host import Host
from trm_modules.host.sources import FolderSource
from trm_modules.package import open_package
from trm_modules.package.from_run import pack_run
from trm_modules.records import FeedbackEvent, SolveContext
from trm_modules.store.export import export_feedback_dataset
from trm_modules.store.plugin import StorePlugin
from trm_modules.train import Trainer, evaluate, load_recipe
from trm_modules.train.data import encode_pairs
from trm_modules.train.retrain import retrain

ROOT = Path(__file__).resolve().parents[1]
EASY = {"min_givens": 10, "max_givens": 14}
HARD = {"min_givens": 4, "max_givens": 7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/drift")
    parser.add_argument("--base-steps", type=int, default=800)
    parser.add_argument("--retrain-steps", type=int, default=800)
    parser.add_argument("--hard-in-use", type=int, default=800, help="Harder puzzles answered in use (with feedback).")
    parser.add_argument("--heldout", type=int, default=1000)
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "packages").mkdir(parents=True)
    t0 = time.perf_counter()

    recipe_path = work / "easy.toml"
    text = (ROOT / "registry" / "recipes" / "sudoku-4x4.toml").read_text()
    text = text.replace('name = "sudoku-4x4"', 'name = "sudoku-4x4-drift"')
    recipe_path.write_text(text)
    recipe = load_recipe(recipe_path, {"data.difficulty": EASY, "train.steps": args.base_steps,
                                       "train.eval_every": args.base_steps, "data.train_puzzles": 5000,
                                       "data.test_puzzles": 500})
    Trainer(recipe, work / "base", recipe_path=recipe_path).run()
    base_path = pack_run(work / "base", name="sudoku-4x4-drift", version="1.0.0",
                         out_path=work / "packages" / "sudoku-4x4-drift-1.0.0.trm")
    base = open_package(base_path)
    print(f"[{time.perf_counter() - t0:6.0f}s] trained and packed {base_path.name} on easy puzzles {EASY}")

    store = StorePlugin.open(str(work / "store.sqlite"))
    host = Host([FolderSource(work / "packages")])
    host.pm.register(store, name="drift-store")
    host.swap("sudoku-4x4-drift", "1.0.0")
    codec = base.codec()
    rng = np.random.default_rng(7)
    hard_in_use = codec.generate(rng, args.hard_in_use, **HARD)
    answers = host.solve_many("sudoku-4x4-drift", [inp for inp, _ in hard_in_use],
                              SolveContext(platform="demo-lms", course="logic-101"))
    wrong = 0
    for (inp, _), answer in zip(hard_in_use, answers):
        ok = bool(codec.check(inp, answer.output))
        wrong += not ok
        host.feedback(FeedbackEvent(solve_id=answer.solve_id, kind="correct" if ok else "incorrect", actor="teacher-1"))
    host.flush()
    host.close()
    store.close()
    print(f"[{time.perf_counter() - t0:6.0f}s] answered {len(answers)} harder puzzles {HARD} in use: "
          f"{wrong} marked incorrect ({wrong / len(answers):.1%})")

    from trm_modules.store import Store

    summary = export_feedback_dataset(Store(str(work / "store.sqlite")), "sudoku-4x4-drift", work / "feedback", codec=codec)
    print(f"[{time.perf_counter() - t0:6.0f}s] exported feedback set: {summary.counts}")

    result = retrain(base, work / "feedback", work / "retrained", steps=args.retrain_steps)
    print(f"[{time.perf_counter() - t0:6.0f}s] retrain: {result.reason}; accepted={result.accepted}")

    heldout = encode_pairs(codec, codec.generate(np.random.default_rng(99), args.heldout, **HARD))
    easy = encode_pairs(codec, codec.generate(np.random.default_rng(98), args.heldout, **EASY))
    old = base.load_model()
    new = open_package(result.package_path).load_model() if result.package_path else None
    figures = {"hard_old": evaluate(old, heldout).accuracy_halting, "easy_old": evaluate(old, easy).accuracy_halting}
    if new is not None:
        figures |= {"hard_new": evaluate(new, heldout).accuracy_halting, "easy_new": evaluate(new, easy).accuracy_halting}
    print(json.dumps({"harder_heldout_puzzles": args.heldout, **{k: round(v, 4) for k, v in figures.items()},
                      "feedback": summary.counts, "retrain": result.to_json()}, indent=2, default=str))
    if new is not None:
        print(f"harder held-out accuracy: {figures['hard_old']:.1%} → {figures['hard_new']:.1%}; "
              f"easy: {figures['easy_old']:.1%} → {figures['easy_new']:.1%}")


if __name__ == "__main__":
    main()
