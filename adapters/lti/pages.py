"""The HTML the LTI tool answers with: the activity, the deep-linking picker, and the form that returns
the picked module to the platform. Data goes to the page as JSON, never interpolated into script."""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any


def _json_for_script(document: Any) -> str:
    return json.dumps(document).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _css() -> str:
    return resources.files("trm_adapters.scorm").joinpath("activity.css").read_text("utf-8")


def _board_script() -> str:
    """The activities' shared board (``trm_adapters/scorm/board.js``): drawing, editing and grading a task's board."""
    return resources.files("trm_adapters.scorm").joinpath("board.js").read_text("utf-8")


def activity_page(
    *,
    launch_id: str,
    title: str,
    module: str,
    version: str | None,
    view: dict[str, Any],
    puzzles: list[dict[str, Any]],
    context_title: str | None,
    gradebook: bool,
) -> str:
    """The activity of a resource-link launch; its script talks to this launch's solve and submit routes."""
    config = {
        "launch": launch_id,
        "view": view,
        "module": module,
        "puzzles": [{"id": p["id"], "tokens": p["tokens"]} for p in puzzles],
    }
    where = f" · {escape(context_title)}" if context_title else ""
    pinned = f" {escape(version)}" if version else ""
    grades = (
        "Your score goes to your course's gradebook when you submit."
        if gradebook
        else "This link has no gradebook column: your score is shown here only."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_css()}</style></head>
<body data-state="loading"><main>
  <header><h1 id="title">{escape(title)}</h1>
  <p class="muted">Module {escape(module)}{pinned}{where}</p></header>
  <p class="instructions">{escape(str(view.get("instructions") or "Solve the puzzle."))}
    Stuck? Ask the module. Cells the module fills count for the module, not for you. {grades}</p>
  <div id="board" role="group" aria-label="puzzle board"></div>
  <div class="actions">
    <button id="ask" type="button">Ask the module</button>
    <button id="submit" type="button">Submit my answer</button>
    <button id="next" type="button">Another puzzle</button>
  </div>
  <p id="status" role="status" aria-live="polite"></p>
</main>
<script type="application/json" id="activity">{_json_for_script(config)}</script>
<script>{_board_script()}</script>
<script>{ACTIVITY_SCRIPT}</script>
</body></html>"""


ACTIVITY_SCRIPT = r"""
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("activity").textContent);
  const view = config.view;
  const $ = (id) => document.getElementById(id);
  let index = 0;
  let board = null;
  const say = (text, kind) => { $("status").textContent = text; $("status").className = kind || ""; };
  async function call(path, body) {
    const response = await fetch(`launches/${config.launch}/${path}`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const document = await response.json();
    if (!response.ok) throw new Error(document.detail || `HTTP ${response.status}`);
    return document;
  }
  function render() {
    board = window.trmBoard.editor($("board"), view, config.puzzles[index].tokens, () => {});
    say(`Puzzle ${index + 1} of ${config.puzzles.length}`);
  }
  $("ask").addEventListener("click", async () => {
    $("ask").disabled = true;
    say("The module is thinking…");
    try {
      const answer = await call("solve", { puzzle: index });
      config.puzzles[index].tokens.forEach((token, i) => { if (board.editable(i)) board.set(i, answer.tokens[i], true); });
      say(`The module (${answer.version}) filled ${answer.cells} cells. They count for the module, not for you.`);
      document.body.dataset.state = "module-answered";
    } catch (error) {
      say(`The module could not answer: ${error.message}`, "bad");
    } finally {
      $("ask").disabled = false;
    }
  });
  $("submit").addEventListener("click", async () => {
    try {
      const result = await call("submit", { puzzle: index, cells: board.get() });
      result.cells.forEach((c) => board.mark(c.index, c.right));
      say(`${result.earned} of ${result.blanks} cells right by you. ${result.message}`,
          result.recorded ? (result.success ? "ok" : "") : "bad");
      document.body.dataset.state = "submitted";
    } catch (error) {
      say(`Your answer could not be submitted: ${error.message}`, "bad");
    }
  });
  $("next").addEventListener("click", () => { index = (index + 1) % config.puzzles.length; render(); });
  render();
  document.body.dataset.state = "ready";
})();
"""


def deep_link_picker(*, launch_id: str, modules: dict[str, list[str]], platform_name: str) -> str:
    """The course author's picker: one module, optionally pinned to a version, returned to the platform."""
    rows = []
    for name, versions in sorted(modules.items()):
        options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in versions)
        rows.append(f"""<tr><td><label><input type="radio" name="module" value="{escape(name)}" required>
  {escape(name)}</label></td><td><select name="version_{escape(name)}" aria-label="version of {escape(name)}">
  <option value="">the course's current version</option>{options}</select></td></tr>""")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Add a reasoning module</title><style>{_css()}
table {{ width: 100%; border-collapse: collapse; }} td {{ padding: .4rem; border-bottom: 1px solid #e5e7eb; }}</style></head>
<body><main><h1>Add a reasoning module</h1>
<p class="muted">Pick the module for this link in {escape(platform_name)}; pin a version to keep the course on it.</p>
<form method="post" action="deep-links/{escape(launch_id)}">
<table>{"".join(rows)}</table>
<div class="actions"><button id="submit" type="submit">Add to the course</button></div>
</form></main></body></html>"""


def auto_post_form(url: str, fields: dict[str, str]) -> str:
    """A page that posts ``fields`` to ``url`` at once (the deep-linking return to the platform)."""
    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Returning to your course…</title></head>
<body><form id="return" method="post" action="{escape(url)}">{inputs}
<noscript><button type="submit">Return to your course</button></noscript></form>
<script>document.getElementById("return").submit();</script></body></html>"""
