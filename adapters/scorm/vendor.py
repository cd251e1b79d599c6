"""onnxruntime-web from the npm registry, installed once into a cache folder and copied into activities."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import platformdirs

from trm_modules.errors import TRMError

#: The onnxruntime-web release the activity is built and tested with.
ONNXRUNTIME_WEB_VERSION = "1.30.0"
#: The WASM-only build: the UMD script and its single-threaded-capable SIMD runtime (loader + binary).
DIST_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


class VendorError(TRMError):
    """onnxruntime-web could not be installed from the npm registry."""


def default_npm_cache() -> Path:
    """``<user cache dir>/npm`` of trm-modules."""
    return Path(platformdirs.user_cache_dir("trm-modules", appauthor=False)) / "npm"


def vendor_onnxruntime_web(cache: Path | None = None, version: str = ONNXRUNTIME_WEB_VERSION) -> tuple[Path, str]:
    """The ``dist`` folder of onnxruntime-web ``version`` (npm-installed into ``cache`` if missing) and its version."""
    cache = Path(cache) if cache is not None else default_npm_cache()
    prefix = cache / f"onnxruntime-web-{version}"
    dist = prefix / "node_modules" / "onnxruntime-web" / "dist"
    if not all((dist / name).is_file() for name in DIST_FILES):
        npm = shutil.which("npm")
        if npm is None:
            raise VendorError("the SCORM export vendors onnxruntime-web from the npm registry and needs npm "
                              "(install Node.js), or a cache folder that already holds it (--npm-cache)")
        prefix.mkdir(parents=True, exist_ok=True)
        if not (prefix / "package.json").exists():  # keeps npm from walking up to an unrelated project
            (prefix / "package.json").write_text('{"private": true}\n')
        result = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
                                 "--save-exact", f"onnxruntime-web@{version}"],
                                capture_output=True, text=True, timeout=600, env={**os.environ, "npm_config_loglevel": "error"})
        if result.returncode != 0 or not all((dist / name).is_file() for name in DIST_FILES):
            raise VendorError(f"npm install onnxruntime-web@{version} failed (exit {result.returncode}): "
                              f"{(result.stderr or result.stdout).strip()[-800:]}")
    installed = json.loads((dist.parent / "package.json").read_text("utf-8"))["version"]
    return dist, installed
