"""How the modules hold up on puzzles from generators written elsewhere, judged only by the rules.

    pip install -e '.[bench]'
    python bench/outside_puzzles.py                                   # the shipped modules, 300 puzzles each
    python bench/outside_puzzles.py registry/packages/maze-9x9/maze-9x9-1.1.0.trm --puzzles 500 --json out.json
    python bench/outside_puzzles.py registry/packages/sudoku-9x9/sudoku-9x9-1.0.0.trm \
        --generators py-sudoku-minimal,dokusan-minimal        # minimal 9×9 puzzles (22–27 givens)
    python bench/outside_puzzles.py PATH/maze-15x15-….trm      # 15×15 mazes: the generators take any odd size

Each package answers through the path `trm solve` takes (``answer_documents``: schema check, batched
solve with halting, constrained decoding, test-time views), once with ``--views 1`` (the first answer)
and once with the default views. The baseline, measured in the same process on the same puzzles, is
the first answer decoded over the whole vocabulary (as 1.0.0 was served before constrained decoding);
the ratio column is first answer / baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outside_generators import MAZE_GENERATORS, MINIMAL_SUDOKU_GENERATORS, SUDOKU_GENERATORS  # noqa: E402

from trm_modules.package import open_package  # noqa: E402
from trm_modules.package.task_schema import task_validator  # noqa: E402
from trm_modules.solving import ModelAnswer, answer_documents  # noqa: E402
from trm_modules.views import DEFAULT_VIEWS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [
    ROOT / "registry" / "packages" / name / f"{name}-1.0.0.trm"
    for name in ("maze-9x9", "maze-7x7", "sudoku-6x6", "sudoku-4x4")
]
#: Share of blank cells of the generated Sudoku (9×9: 25–57 givens, the range the 9×9 module is judged on).
SUDOKU_BLANKS = {4: (0.3, 0.7), 6: (0.3, 0.7), 9: (0.30, 0.69)}


class WholeVocabulary:
    """The package's codec, decoding over the whole vocabulary (the baseline: no constraint)."""

    def __init__(self, codec) -> None:
        self._codec = codec

    def __getattr__(self, name):
        return getattr(self._codec, name)

    def answer_token_table(self) -> None:
        return None


def outside_puzzles(codec, count: int, seed: int, only: set[str] | None = None) -> dict[str, list[dict]]:
    """``count`` inputs from every outside generator of the codec's task and size (``only``: these names)."""

    def wanted(name: str) -> bool:
        return only is None or name in only

    if codec.name == "sudoku":
        sets = {
            name: make(codec.size, count, seed, SUDOKU_BLANKS[codec.size])
            for name, make in SUDOKU_GENERATORS.items()
            if wanted(name) and (name != "dokusan" or codec.size == 9)
        }
        sets.update(
            {
                name: make(codec.size, count, seed)
                for name, make in MINIMAL_SUDOKU_GENERATORS.items()
                if wanted(name) and codec.size == 9
            }
        )
        return sets
    if codec.name == "maze":
        return {name: make(codec.size, count, seed) for name, make in MAZE_GENERATORS.items() if wanted(name)}
    raise SystemExit(f"no outside generator for the {codec.name!r} task")


def cached_outside_puzzles(codec, count: int, seed: int, only: set[str] | None, cache: Path | None) -> dict:
    """``outside_puzzles``, read from / written to ``cache`` (a folder of JSON files, one per generator, size,
    count and seed) so slow generators (minimal Sudoku: seconds a puzzle) run once for several packages."""
    if cache is None:
        return outside_puzzles(codec, count, seed, only)
    cache.mkdir(parents=True, exist_ok=True)
    names = [name for name in generator_names(codec) if only is None or name in only]
    sets = {}
    for name in names:
        path = cache / f"{codec.name}-{codec.size}-{name}-{count}-{seed}.json"
        if not path.is_file():
            path.write_text(json.dumps(outside_puzzles(codec, count, seed, {name})[name]))
        sets[name] = json.loads(path.read_text())
    return sets


def generator_names(codec) -> list[str]:
    """The outside generators that make puzzles for the codec's task and size."""
    if codec.name == "sudoku":
        return [n for n in SUDOKU_GENERATORS if n != "dokusan" or codec.size == 9] + (
            list(MINIMAL_SUDOKU_GENERATORS) if codec.size == 9 else []
        )
    if codec.name == "maze":
        return list(MAZE_GENERATORS)
    raise SystemExit(f"no outside generator for the {codec.name!r} task")


def judge(model, codec, schema, documents, views: int) -> dict:
    start = time.perf_counter()
    results = answer_documents(model, codec, task_validator(schema), documents, views=views)
    seconds = time.perf_counter() - start
    answers = [r for r in results if isinstance(r, ModelAnswer)]
    return {
        "valid": sum(a.valid is True for a in answers) / len(documents),
        "mean_steps": float(np.mean([a.steps for a in answers])) if answers else 0.0,
        "mean_views": float(np.mean([a.views for a in answers])) if answers else 0.0,
        "seconds_per_puzzle": seconds / len(documents),
        "errors": len(documents) - len(answers),
    }


def measure(
    path: Path,
    count: int,
    seed: int,
    default_views: int = DEFAULT_VIEWS,
    only: set[str] | None = None,
    cache: Path | None = None,
    bf16: bool = False,
) -> list[dict]:
    package = open_package(path)
    model, codec = package.load_model(), package.codec()
    rows = []
    for generator, documents in cached_outside_puzzles(codec, count, seed, only, cache).items():
        baseline = judge(model, WholeVocabulary(codec), package.input_schema, documents, views=1)
        first = judge(model, codec, package.input_schema, documents, views=1)
        default = judge(model, codec, package.input_schema, documents, views=default_views)
        rows.append(
            {
                "module": f"{package.name}@{package.version}",
                "generator": generator,
                "puzzles": count,
                "first": first,
                "default": default,
                "baseline_first": baseline,
                "ratio_first_to_baseline": first["valid"] / baseline["valid"] if baseline["valid"] else None,
            }
        )
        if bf16:  # fp32 against bf16 autocast on the same puzzles (what `trm pack --outside` records)
            from trm_modules.precision_evaluation import compare_precisions

            check = compare_precisions(
                model, codec, package.input_validator, {generator: documents}, views=default_views
            )
            rows[-1]["bf16_check"] = check["sets"][0]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", type=Path, default=SHIPPED)
    parser.add_argument("--puzzles", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--views",
        type=int,
        default=DEFAULT_VIEWS,
        help="Views of the default answer (1 skips the views: an untrained pre-release fails all).",
    )
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    parser.add_argument("--cache", type=Path, help="Folder to keep generated puzzle sets in (reused when present).")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="Also answer every set in bf16 (autocast) and compare "
        "with fp32 (rows gain bf16_check; `trm pack --outside` then records evaluation.precision.bf16).",
    )
    parser.add_argument(
        "--generators",
        help="Comma-separated generator names (default: all for the task), e.g. "
        "py-sudoku-minimal,dokusan-minimal or mazelib-loops.",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    header = (
        f"{'module':<22} {'generator':<10} {'first':>7} {'default':>8} {'views':>6} {'steps':>6} "
        f"{'s/puzzle':>9} {'baseline':>9} {'ratio':>6}"
    )
    print(header)
    for path in args.packages:
        only = set(args.generators.split(",")) if args.generators else None
        for row in measure(path, args.puzzles, args.seed, args.views, only, args.cache, args.bf16):
            rows.append(row)
            ratio = row["ratio_first_to_baseline"]
            print(
                f"{row['module']:<22} {row['generator']:<10} {row['first']['valid']:>7.1%} "
                f"{row['default']['valid']:>8.1%} {row['default']['mean_views']:>6.2f} "
                f"{row['first']['mean_steps']:>6.2f} {row['default']['seconds_per_puzzle']:>9.3f} "
                f"{row['baseline_first']['valid']:>9.1%} {'—' if ratio is None else f'{ratio:.2f}x':>6}",
                flush=True,
            )
            if "bf16_check" in row:
                check = row["bf16_check"]
                print(
                    f"{'':<22} {'  bf16':<10} {check['bf16']['first']:>7.1%} {check['bf16']['default']:>8.1%} "
                    f"(fp32 {check['fp32']['first']:.1%} / {check['fp32']['default']:.1%}; "
                    f"{check['differing_first']} first answers differ; "
                    f"{check['seconds']['fp32'] / max(check['seconds']['bf16'], 1e-9):.2f}× the fp32 speed)",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
