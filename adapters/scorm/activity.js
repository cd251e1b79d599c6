// The SCORM 2004 activity of a reasoning module: a fill-in grid puzzle, the module's ONNX model
// running in the browser (onnxruntime-web, WASM), and reporting through the runtime API API_1484_11.
"use strict";

(function () {
  const state = { doc: null, puzzleIndex: 0, session: null, usedModule: false, api: null, terminated: false,
                  result: null };
  const $ = (id) => document.getElementById(id);

  // --------------------------------------------------------------------------- SCORM runtime
  function findApi(win) {
    // The standard search: up the frame parents (at most 500 levels), then the opener's chain.
    for (let w = win, depth = 0; w && depth < 500; depth += 1) {
      try {
        if (w.API_1484_11) return w.API_1484_11;
      } catch (e) { /* a cross-origin frame: keep climbing */ }
      if (w.parent === w) break;
      w = w.parent;
    }
    if (win.opener && !win.opener.closed) return findApi(win.opener);
    return null;
  }

  function lms(call, ...args) {
    if (!state.api) return "";
    const value = state.api[call](...args);
    const code = String(state.api.GetLastError());
    if (code !== "0") console.warn(`SCORM ${call}(${args.join(", ")}) -> error ${code}: ${state.api.GetErrorString(code)}`);
    return value;
  }

  function terminate() {
    if (state.api && !state.terminated) {
      lms("Commit", "");
      lms("Terminate", "");
      state.terminated = true;
      document.body.dataset.state = "terminated";
    }
  }

  // ------------------------------------------------------------------------------------ board
  const view = () => state.doc.view;
  const puzzle = () => state.doc.puzzles[state.puzzleIndex];
  const cells = () => Array.from($("board").querySelectorAll("input"));

  function render() {
    const v = view();
    const board = $("board");
    board.innerHTML = "";
    board.style.gridTemplateColumns = `repeat(${v.cols}, 3rem)`;
    puzzle().tokens.forEach((token, i) => {
      const input = document.createElement("input");
      const row = Math.floor(i / v.cols), col = i % v.cols;
      input.inputMode = "numeric";
      input.maxLength = 2;
      input.setAttribute("aria-label", `row ${row + 1} column ${col + 1}`);
      if ((col + 1) % v.box_cols === 0 && col + 1 < v.cols) input.classList.add("box-right");
      if ((row + 1) % v.box_rows === 0 && row + 1 < v.rows) input.classList.add("box-bottom");
      if (token !== v.blank_token) {
        input.value = v.labels[String(token)];
        input.readOnly = true;
        input.classList.add("given");
      } else {
        input.addEventListener("input", () => input.classList.remove("module", "right", "wrong"));
      }
      board.appendChild(input);
    });
    state.usedModule = false;
    state.result = null;
    $("status").textContent = `Puzzle ${state.puzzleIndex + 1} of ${state.doc.puzzles.length}`;
    $("status").className = "";
  }

  function tokenOfLabel(label) {
    const labels = view().labels;
    const found = Object.keys(labels).find((token) => labels[token] === label.trim());
    return found === undefined ? view().blank_token : Number(found);
  }

  // ----------------------------------------------------------------------------------- module
  async function askModule() {
    $("ask").disabled = true;
    $("status").textContent = "The module is thinking…";
    try {
      if (!state.session) {
        ort.env.wasm.wasmPaths = new URL("vendor/", document.baseURI).href; // import() needs a URL
        ort.env.wasm.numThreads = 1; // no cross-origin isolation inside an LMS frame
        state.session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
      }
      const p = puzzle();
      const tokens = new ort.Tensor("int64", BigInt64Array.from(p.tokens.map(BigInt)), [1, p.tokens.length]);
      const ids = new ort.Tensor("int64", BigInt64Array.from([BigInt(p.puzzle_id)]), [1]);
      const out = await state.session.run({ tokens, puzzle_ids: ids });
      const answer = Array.from(out.answer.data, Number);
      const confidence = Number(out.confidence.data[0]);
      cells().forEach((input, i) => {
        if (input.readOnly) return;
        input.value = view().labels[String(answer[i])] || "";
        input.classList.add("module");
      });
      state.usedModule = true;
      $("status").textContent = `The module answered (confidence ${(confidence * 100).toFixed(0)} %, ` +
        `${state.doc.steps} reasoning steps). Check it, then submit.`;
      document.body.dataset.state = "module-answered";
    } catch (error) {
      $("status").textContent = `The module could not run here: ${error.message || error}`;
      $("status").className = "bad";
      document.body.dataset.state = "module-failed";
    } finally {
      $("ask").disabled = false;
    }
  }

  // ----------------------------------------------------------------------------------- submit
  function submit() {
    const p = puzzle();
    const inputs = cells();
    const response = inputs.map((input) => tokenOfLabel(input.value));
    let blanks = 0, right = 0;
    p.tokens.forEach((token, i) => {
      if (token !== view().blank_token) return;
      blanks += 1;
      const ok = response[i] === p.solution_tokens[i];
      right += ok ? 1 : 0;
      inputs[i].classList.toggle("right", ok);
      inputs[i].classList.toggle("wrong", !ok);
    });
    const scaled = blanks ? right / blanks : 1;
    const success = right === blanks;
    const label = (t) => view().labels[String(t)] || "0";
    const n = Number(lms("GetValue", "cmi.interactions._count")) || 0;
    const prefix = `cmi.interactions.${n}.`;
    lms("SetValue", prefix + "id", `urn:trm-modules:${state.doc.module}:${p.id}`);
    lms("SetValue", prefix + "type", "fill-in");
    lms("SetValue", prefix + "description",
        `${state.doc.module} ${state.doc.version} ${p.id}` + (state.usedModule ? " (asked the module)" : ""));
    lms("SetValue", prefix + "learner_response", response.map(label).join(""));
    lms("SetValue", prefix + "correct_responses.0.pattern", p.solution_tokens.map(label).join(""));
    lms("SetValue", prefix + "result", success ? "correct" : "incorrect");
    lms("SetValue", "cmi.score.min", "0");
    lms("SetValue", "cmi.score.max", String(blanks));
    lms("SetValue", "cmi.score.raw", String(right));
    lms("SetValue", "cmi.score.scaled", scaled.toFixed(4));
    lms("SetValue", "cmi.success_status", success ? "passed" : "failed");
    lms("SetValue", "cmi.progress_measure", "1");
    lms("SetValue", "cmi.completion_status", "completed");
    lms("Commit", "");
    state.result = { scaled, success, right, blanks };
    $("status").textContent = success ? `Solved! ${right} of ${blanks} cells right.`
                                      : `${right} of ${blanks} cells right — score ${(scaled * 100).toFixed(0)} %.`;
    $("status").className = success ? "ok" : "bad";
    document.body.dataset.state = "submitted";
  }

  // ------------------------------------------------------------------------------------ start
  async function start() {
    state.api = findApi(window);
    $("lms").textContent = state.api ? "Connected to your learning platform (SCORM 2004)."
                                     : "No learning platform found: your result will not be recorded.";
    if (state.api) {
      lms("Initialize", "");
      if (lms("GetValue", "cmi.completion_status") !== "completed") {
        lms("SetValue", "cmi.completion_status", "incomplete");
      }
    }
    state.doc = await (await fetch("activity.json")).json();
    $("title").textContent = state.doc.title || state.doc.module;
    $("subtitle").textContent = `Module ${state.doc.module} ${state.doc.version} · ${state.doc.digest.slice(0, 19)}…`;
    render();
    $("ask").addEventListener("click", askModule);
    $("submit").addEventListener("click", submit);
    $("next").addEventListener("click", () => {
      state.puzzleIndex = (state.puzzleIndex + 1) % state.doc.puzzles.length;
      render();
    });
    $("finish").addEventListener("click", terminate);
    window.addEventListener("pagehide", terminate);
    document.body.dataset.state = "ready";
  }

  window.trmActivity = { state, ready: null };
  window.trmActivity.ready = start().catch((error) => {
    $("status").textContent = `The activity could not start: ${error.message || error}`;
    document.body.dataset.state = "failed";
  });
})();
