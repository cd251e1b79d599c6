"""SCORM 2004 export: the manifest, the activity document, and the activity running in headless Chromium
under scorm-again (a SCORM 2004 runtime from the npm registry), with the module's ONNX model in the browser.

The browser test needs node, npm (and the npm registry) and Chromium (``apt-get install chromium``);
it is skipped where they are absent, as in CI. Set ``TRM_SCORM_SCREENSHOT=path.png`` to save a screenshot.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from test_package_kit import build_tiny_package
from trm_adapters.scorm import ScormExportError, export_scorm, scorm_manifest
from trm_adapters.scorm.export import activity_document
from trm_modules.package import open_package

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE, NPM = shutil.which("node"), shutil.which("npm")
BROWSER_TOOLS = bool(CHROMIUM and NODE and NPM)
NS = {"cp": "http://www.imsglobal.org/xsd/imscp_v1p1", "adlcp": "http://www.adlnet.org/xsd/adlcp_v1p3"}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    # TRM_SCORM_PACKAGE=registry/packages/…trm runs the browser test on a trained module (for the screenshot).
    if os.environ.get("TRM_SCORM_PACKAGE"):
        return open_package(os.environ["TRM_SCORM_PACKAGE"])
    return open_package(build_tiny_package(tmp_path_factory.mktemp("scorm") / "m.trm", name="sudoku-4x4"))


def test_manifest_is_scorm_2004_4th_edition_with_one_sco_listing_every_file():
    root = ET.fromstring(scorm_manifest("urn:x", "Title", "About", "1.0.0", ["index.html", "model.onnx"]))
    assert root.find("cp:metadata/cp:schemaversion", NS).text == "2004 4th Edition"
    assert root.find("cp:organizations", NS).get("default") == root.find("cp:organizations/cp:organization", NS).get(
        "identifier")
    resource = root.find("cp:resources/cp:resource", NS)
    assert resource.get(f"{{{NS['adlcp']}}}scormType") == "sco" and resource.get("href") == "index.html"
    assert [f.get("href") for f in resource.findall("cp:file", NS)] == ["index.html", "model.onnx"]


def test_activity_puzzles_carry_their_encodings_and_solutions(package):
    document = activity_document(package, puzzles=3, seed=1, max_steps=4)
    codec = package.codec()
    assert len(document["puzzles"]) == 3 and document["view"]["kind"] == "fill-grid"
    for item in document["puzzles"]:
        assert item["tokens"] == codec.encode_input(item["input"]).tolist()
        solution = codec.decode_output(__import__("numpy").array(item["solution_tokens"]), item["input"])
        assert codec.check(item["input"], solution)


def test_task_without_a_browser_view_is_refused_with_a_typed_error(package, monkeypatch):
    monkeypatch.setattr(type(package.codec()), "name", "maze")
    with pytest.raises(ScormExportError, match="browser view"):
        activity_document(package, puzzles=1, seed=0, max_steps=4)


# ------------------------------------------------------------------------------- in a browser
HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>LMS</title>
<script src="/runtime/scorm2004.min.js"></script>
<script>
  const Api = window.Scorm2004API.Scorm2004API || window.Scorm2004API.default || window.Scorm2004API;
  window.API_1484_11 = new Api({ logLevel: 5 });
  window.lmsCalls = [];
  for (const name of ["Initialize", "Commit", "Terminate"]) {
    window.API_1484_11.on(name, () => window.lmsCalls.push([name]));
  }
  window.API_1484_11.on("SetValue.cmi.*", (element, value) => window.lmsCalls.push(["SetValue", element, value]));
</script></head>
<body style="margin:0"><iframe id="sco" src="/activity/index.html" style="width:640px;height:720px;border:0"></iframe>
</body></html>"""

DRIVER = """
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--headless", "--no-sandbox",
    "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"] });
  const page = await browser.newPage({ viewport: { width: 640, height: 720 } });
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(m.text()));
  await page.goto(process.env.LMS_URL);
  const sco = page.frameLocator("#sco");
  const body = sco.locator("body");
  await body.and(sco.locator("body[data-state=ready]")).waitFor({ timeout: 60000 });
  await sco.locator("#ask").click();
  await sco.locator("body[data-state=module-answered], body[data-state=module-failed]").waitFor({ timeout: 60000 });
  const afterAsk = await body.getAttribute("data-state");
  const askStatus = await sco.locator("#status").textContent();
  await sco.locator("#submit").click();
  await sco.locator("body[data-state=submitted]").waitFor({ timeout: 10000 });
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  await sco.locator("#finish").click();
  const result = await page.evaluate(() => ({ calls: window.lmsCalls,
    scaled: window.API_1484_11.cmi.score.scaled, completion: window.API_1484_11.cmi.completion_status,
    success: window.API_1484_11.cmi.success_status }));
  console.log(JSON.stringify({ afterAsk, askStatus, status: await sco.locator("#status").textContent(), consoleLines, ...result }));
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
"""


def npm_tools(cache: Path) -> Path:
    """scorm-again and playwright-core from the npm registry, installed once into ``cache``."""
    modules = cache / "node_modules"
    if not (modules / "scorm-again" / "dist" / "scorm2004.min.js").is_file() or not (modules / "playwright-core").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text('{"private": true}\n')
        subprocess.run([NPM, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--ignore-scripts",
                        "scorm-again@3.4.3", "playwright-core@1.65.1"], check=True, capture_output=True, timeout=600)
    return modules


@pytest.mark.skipif(not BROWSER_TOOLS, reason="needs node, npm and chromium (apt-get install chromium)")
def test_activity_runs_the_module_in_chromium_and_reports_the_score_to_a_scorm_2004_runtime(package, tmp_path):
    from trm_adapters.scorm.vendor import default_npm_cache

    zip_path = export_scorm(package, tmp_path / "activity.zip", puzzles=2).path
    site = tmp_path / "site"
    with zipfile.ZipFile(zip_path) as zf:
        assert {"imsmanifest.xml", "index.html", "model.onnx", "vendor/ort.wasm.min.js"} <= set(zf.namelist())
        zf.extractall(site / "activity")
    modules = npm_tools(default_npm_cache() / "test-tools")
    (site / "runtime").mkdir()
    shutil.copy(modules / "scorm-again" / "dist" / "scorm2004.min.js", site / "runtime")
    (site / "lms.html").write_text(HARNESS)
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "driver.cjs").write_text(DRIVER)
        env = {**os.environ, "PLAYWRIGHT_CORE": str(modules / "playwright-core"), "CHROMIUM": CHROMIUM,
               "LMS_URL": f"http://127.0.0.1:{server.server_address[1]}/lms.html",
               "SCREENSHOT": os.environ.get("TRM_SCORM_SCREENSHOT", "")}
        run = subprocess.run([NODE, str(tmp_path / "driver.cjs")], capture_output=True, text=True, env=env, timeout=180)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["afterAsk"] == "module-answered", (result["askStatus"], result["consoleLines"])
    calls = result["calls"]
    names = [c[0] for c in calls]
    assert names[0] == "Initialize" and names[-1] == "Terminate" and "Commit" in names
    set_values = {c[1]: c[2] for c in calls if c[0] == "SetValue"}
    assert set_values["cmi.completion_status"] == "completed"
    assert set_values["cmi.success_status"] in ("passed", "failed")
    assert 0.0 <= float(set_values["cmi.score.scaled"]) <= 1.0
    assert float(result["scaled"]) == float(set_values["cmi.score.scaled"])
    assert set_values["cmi.interactions.0.type"] == "fill-in" and set_values["cmi.interactions.0.result"] in (
        "correct", "incorrect")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}

    def log_message(self, *args: object) -> None:
        pass
