"""The browser activity's model in headless Chromium: session build (as the page builds it: ORT graph passes off) of the one-step graph the SCORM and
cmi5 activities ship vs the unrolled N-step graph (``trm export-onnx``, the baseline), and the time from
the page being visible to the first "Ask the module" answer when the learner clicks at once.

Exports the package as a SCORM activity (onnxruntime-web from npm), adds the unrolled graph beside it,
serves the folder on loopback and runs bench/browser/model_load.cjs (playwright-core from the test
tools cache, the distribution's Chromium) for ``--rounds`` rounds, each building one session from each
graph in a fresh page, alternately, then loading the activity and asking once.

Usage: python bench/bench_browser_first_answer.py [PACKAGE.trm] [--rounds 3]
Needs Chromium, node and npm (as the browser tests). Prints medians and the ratio unrolled / step.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path

import onnx

from trm_adapters.scorm import export_scorm
from trm_adapters.scorm.vendor import default_npm_cache
from trm_modules.package import open_package
from trm_modules.package.onnx_export import export_onnx

HERE = Path(__file__).resolve().parent
DEFAULT_PACKAGE = HERE.parent / "registry" / "packages" / "sudoku-4x4" / "sudoku-4x4-1.0.0.trm"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default=str(DEFAULT_PACKAGE))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    modules = default_npm_cache() / "test-tools" / "node_modules"
    if not (chromium and shutil.which("node") and (modules / "playwright-core").is_dir()):
        raise SystemExit(
            "needs chromium, node and playwright-core in the test-tools cache (run tests/test_scorm.py once)"
        )
    package = open_package(args.package)
    with tempfile.TemporaryDirectory(prefix="trm-bench-browser-") as tmp:
        site = Path(tmp) / "site"
        with zipfile.ZipFile(export_scorm(package, Path(tmp) / "activity.zip", puzzles=1).path) as zf:
            zf.extractall(site / "activity")
        export_onnx(package, site / "activity" / "unrolled.onnx")
        nodes = {
            name: len(onnx.load(str(site / "activity" / name)).graph.node) for name in ("model.onnx", "unrolled.onnx")
        }
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            env = {
                **os.environ,
                "NODE_PATH": str(modules),
                "CHROMIUM": chromium,
                "CHROMIUM_ARGS": json.dumps(CHROMIUM_ARGS),
                "ROUNDS": str(args.rounds),
                "BASE_URL": f"http://127.0.0.1:{server.server_address[1]}",
                "MODELS": json.dumps(["model.onnx", "unrolled.onnx"]),
            }
            run = subprocess.run(
                ["node", str(HERE / "browser" / "model_load.cjs")],
                capture_output=True,
                text=True,
                env=env,
                timeout=3600,
            )
        finally:
            server.shutdown()
    if run.returncode != 0:
        raise SystemExit(run.stderr[-2000:])
    result = json.loads(run.stdout.strip().splitlines()[-1])
    step, unrolled = (statistics.median(result["sessions"][m]) / 1000 for m in ("model.onnx", "unrolled.onnx"))
    print(
        f"package {package.manifest.name} {package.manifest.version}; {args.rounds} rounds; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"session build, median: step graph ({nodes['model.onnx']:,} nodes) {step:.2f} s, unrolled graph "
        f"({nodes['unrolled.onnx']:,} nodes) {unrolled:.2f} s: unrolled / step = {unrolled / step:.1f}x"
    )
    print(
        f"page visible -> model ready, median {statistics.median(result['modelReady']) / 1000:.2f} s; "
        f"-> first answer (clicked at once), median {statistics.median(result['firstAnswer']) / 1000:.2f} s "
        f"(each: {', '.join(f'{t / 1000:.2f}' for t in result['firstAnswer'])})"
    )


if __name__ == "__main__":
    main()
