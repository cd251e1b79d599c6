"""Browser libraries from the npm registry, installed once into a cache folder and copied into activities:
onnxruntime-web (the model) for SCORM and cmi5, @xapi/cmi5 (the cmi5 client) for cmi5."""

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
#: The cmi5 client (xAPI.js), its self-contained browser build (axios and @xapi/xapi bundled).
CMI5_VERSION = "1.4.0"
CMI5_DIST_FILES = ("Cmi5.umd.js",)


class VendorError(TRMError):
    """A browser library could not be installed from the npm registry."""


def default_npm_cache() -> Path:
    """``<user cache dir>/npm`` of trm-modules."""
    return Path(platformdirs.user_cache_dir("trm-modules", appauthor=False)) / "npm"


def vendor_npm_dist(package: str, version: str, files: tuple[str, ...], cache: Path | None = None) -> tuple[Path, str]:
    """The ``dist`` folder of npm ``package@version`` holding ``files`` (npm-installed into ``cache`` if
    missing) and the installed version."""
    cache = Path(cache) if cache is not None else default_npm_cache()
    prefix = cache / f"{package.replace('/', '+').lstrip('@')}-{version}"
    dist = prefix / "node_modules" / package / "dist"
    if not all((dist / name).is_file() for name in files):
        npm = shutil.which("npm")
        if npm is None:
            raise VendorError(
                f"the export vendors {package} from the npm registry and needs npm (install Node.js), "
                "or a cache folder that already holds it (--npm-cache)"
            )
        prefix.mkdir(parents=True, exist_ok=True)
        if not (prefix / "package.json").exists():  # keeps npm from walking up to an unrelated project
            (prefix / "package.json").write_text('{"private": true}\n')
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--save-exact",
                f"{package}@{version}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "npm_config_loglevel": "error"},
        )
        if result.returncode != 0 or not all((dist / name).is_file() for name in files):
            raise VendorError(
                f"npm install {package}@{version} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}"
            )
    installed = json.loads((dist.parent / "package.json").read_text("utf-8"))["version"]
    return dist, installed


def vendor_onnxruntime_web(cache: Path | None = None, version: str = ONNXRUNTIME_WEB_VERSION) -> tuple[Path, str]:
    """The ``dist`` folder of onnxruntime-web ``version`` (npm-installed into ``cache`` if missing) and its version."""
    return vendor_npm_dist("onnxruntime-web", version, DIST_FILES, cache)


def vendor_cmi5(cache: Path | None = None, version: str = CMI5_VERSION) -> tuple[Path, str]:
    """The ``dist`` folder of @xapi/cmi5 ``version`` (npm-installed into ``cache`` if missing) and its version."""
    return vendor_npm_dist("@xapi/cmi5", version, CMI5_DIST_FILES, cache)
