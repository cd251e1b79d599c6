// The browser activity of a reasoning module: a puzzle on the board its task's plugin describes (board.js,
// trm_board_view), the module's one-step ONNX model
// running here (onnxruntime-web, WASM) with early halting and the server's test-time views, and a
// grading rule that credits the learner only with what the learner did. Results go to the platform
// through a reporter (window.trmReporter: scorm.js for SCORM 2004, cmi5.js for cmi5), loaded first.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  // performance.now() marks: visible (board shown), modelReady, firstAsk (click), firstAnswer.
  const timings = {};
  const state = { doc: null, puzzleIndex: 0, moduleCells: new Set(), closed: false, model: null, asking: false,
                  lastGrade: null, board: null };
  const reporter = window.trmReporter;

  function say(text, kind) {
    $("status").textContent = text;
    $("status").className = kind || "";
  }

  // ------------------------------------------------------------------------------------ board
  const view = () => state.doc.view;
  const puzzle = () => state.doc.puzzles[state.puzzleIndex];

  function render() {
    state.board = window.trmBoard.editor($("board"), view(), puzzle().tokens, () => {});
    state.moduleCells = new Set();
    state.lastGrade = null;
    say(`Puzzle ${state.puzzleIndex + 1} of ${state.doc.puzzles.length}`);
  }

  // ----------------------------------------------------------------------------------- module
  function setProgress(fraction, text) {
    const bar = $("model-progress");
    if (fraction === null) bar.removeAttribute("value"); else bar.value = fraction;
    $("model-state").textContent = text;
  }

  async function fetchWithProgress(url, onProgress) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    const total = Number(response.headers.get("content-length")) || 0;
    if (!response.body || !total) return new Uint8Array(await response.arrayBuffer());
    const reader = response.body.getReader();
    const bytes = new Uint8Array(total);
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes.set(value, received);
      received += value.length;
      onProgress(received / total);
    }
    return bytes;
  }

  // Started as soon as the page runs, so the model loads while the learner reads the puzzle.
  function loadModel() {
    if (!state.model) {
      state.model = (async () => {
        ort.env.wasm.wasmPaths = new URL("vendor/", document.baseURI).href; // import() needs a URL
        ort.env.wasm.numThreads = 1; // no cross-origin isolation inside an LMS frame
        setProgress(0, "Loading the module…");
        const bytes = await fetchWithProgress("model.onnx", (f) => setProgress(0.5 * f, "Loading the module…"));
        setProgress(null, "Preparing the module…");
        // The graph is constant-folded at export (onnxscript); ORT's own passes would double the session
        // build in the browser (3.3 s -> 1.5 s on a loaded 2-core machine) for no measurable run time.
        const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"],
                                                                   graphOptimizationLevel: "disabled" });
        timings.modelReady = performance.now();
        setProgress(1, "The module is ready.");
        document.body.dataset.model = "ready";
        return session;
      })();
      state.model.catch((error) => {
        setProgress(0, `The module could not load here: ${error.message || error}`);
        document.body.dataset.model = "failed";
      });
    }
    return state.model;
  }

  // Rows of token sequences through up to doc.steps supervision steps; a row stops at the first step
  // whose halting logit is positive, as model.solve(halt=True) on the server.
  async function solveRows(session, rows, puzzleId) {
    const B = rows.length, L = state.doc.seq_len, [T, D] = state.doc.carry_shape;
    const tokens = new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [B, L]);
    const puzzleIds = new ort.Tensor("int64", BigInt64Array.from(rows.map(() => BigInt(puzzleId))), [B]);
    let y = new ort.Tensor("float32", new Float32Array(B * T * D), [B, T, D]);
    let z = new ort.Tensor("float32", new Float32Array(B * T * D), [B, T, D]);
    let fresh = new ort.Tensor("bool", new Uint8Array(B).fill(1), [B]);
    const results = rows.map(() => ({ tokens: null, steps: 0, confidence: 0 }));
    const running = rows.map(() => true);
    for (let step = 1; step <= state.doc.steps; step += 1) {
      const out = await session.run({ tokens, puzzle_ids: puzzleIds, y, z, fresh });
      fresh = new ort.Tensor("bool", new Uint8Array(B), [B]);
      y = out.y_next;
      z = out.z_next;
      for (let b = 0; b < B; b += 1) {
        if (!running[b]) continue;
        const q = Number(out.q_halt.data[b]);
        results[b] = { tokens: Array.from(out.answer.data.slice(b * L, (b + 1) * L), Number), steps: step,
                       confidence: 1 / (1 + Math.exp(-q)) };
        if (q > 0) running[b] = false;
      }
      if (!running.some(Boolean)) break;
    }
    return results;
  }

  // Test-time views (trm_modules/views.py): viewed[i] = lookup[tokens[source[i]]], and back.
  const applyView = (v, tokens) => v.source.map((cell) => v.lookup[tokens[cell]]);
  function invertView(v, answer) {
    const restoreToken = [];
    v.lookup.forEach((viewed, original) => { restoreToken[viewed] = original; });
    const out = new Array(answer.length);
    v.source.forEach((cell, i) => { out[cell] = restoreToken[answer[i]]; });
    return out;
  }

  // The task's rules as the board describes them (board.js). null: the tokens form no answer.
  const followsRules = (p, answer) => window.trmBoard.followsRules(view(), p.tokens, answer);

  // views.choose: the first answer the rules accept, else the one most views agree on, else the first.
  function choose(candidates) {
    const accepted = candidates.find((c) => c.valid === true);
    if (accepted) return accepted;
    const answered = candidates.filter((c) => c.valid !== null);
    if (!answered.length) return candidates[0];
    const votes = new Map();
    answered.forEach((c) => votes.set(c.key, (votes.get(c.key) || 0) + 1));
    const best = Math.max(...votes.values());
    return answered.find((c) => votes.get(c.key) === best);
  }

  async function answerOf(p) {
    const session = await loadModel();
    const views = state.doc.views;
    const candidate = (result, v) => {
      const tokens = invertView(v, result.tokens);
      return { ...result, tokens, key: tokens.join(","), valid: followsRules(p, tokens) };
    };
    const [first] = await solveRows(session, [p.tokens], p.puzzle_id);
    const candidates = [candidate(first, views[0])];
    if (candidates[0].valid !== true && views.length > 1) {
      const more = await solveRows(session, views.slice(1).map((v) => applyView(v, p.tokens)), p.puzzle_id);
      more.forEach((result, i) => candidates.push(candidate(result, views[i + 1])));
    }
    const chosen = choose(candidates);
    return { ...chosen, views: candidates.length, steps: candidates.reduce((sum, c) => sum + c.steps, 0) };
  }

  async function askModule() {
    if (state.closed || state.asking) return;
    if (timings.firstAsk === undefined) timings.firstAsk = performance.now();
    state.asking = true;
    $("ask").disabled = true;
    say(timings.modelReady === undefined ? "The module is still loading; it answers as soon as it is ready…"
                                         : "The module is thinking…");
    try {
      const p = puzzle();
      const answer = await answerOf(p);
      if (timings.firstAnswer === undefined) timings.firstAnswer = performance.now();
      const filled = [];
      p.tokens.forEach((token, i) => {
        if (!state.board.editable(i)) return;
        state.board.set(i, answer.tokens[i], true);
        state.moduleCells.add(i);
        filled.push(i);
      });
      const outcome = await reporter.recordHelp(p, { cells: filled.length, views: answer.views, steps: answer.steps,
                                                     valid: answer.valid, confidence: answer.confidence });
      say(`The module filled ${filled.length} cells (confidence ${(answer.confidence * 100).toFixed(0)} %, ` +
          `${answer.views > 1 ? `${answer.views} views, ` : ""}${answer.steps} reasoning steps). Cells it filled ` +
          `count for the module, not for you.` +
          (outcome.recorded ? "" : ` ${outcome.message}`));
      document.body.dataset.state = "module-answered";
    } catch (error) {
      say(`The module could not run here: ${error.message || error}`, "bad");
      document.body.dataset.state = "module-failed";
    } finally {
      state.asking = false;
      $("ask").disabled = state.closed;
    }
  }

  // ----------------------------------------------------------------------------------- grading
  // board.js grade(): a cell to fill earns a point when it is right and the module never filled it on this
  // puzzle; a mark where the solution has none takes one back. Passed = every cell earned, no wrong mark.
  function grade(p) {
    const result = window.trmBoard.grade(view(), p.tokens, p.solution_tokens, state.board.get(), state.moduleCells);
    result.label = (t) => view().labels[String(t)] || "0";
    return result;
  }

  async function submit() {
    if (state.closed) {
      say("This attempt is closed: nothing more is recorded. Open the activity again for a new attempt.", "bad");
      return;
    }
    const p = puzzle();
    const result = grade(p);
    result.cells.forEach(({ index, right }) => state.board.mark(index, right));
    state.lastGrade = result;
    const outcome = await reporter.recordSubmission(p, result);
    const helped = result.byModule ? ` The module filled ${result.byModule} of them: those count for the module.` : "";
    const text = result.success ? `Solved by you! ${result.mine} of ${result.blanks} cells.`
                                : `${result.mine} of ${result.blanks} cells right by you — score ` +
                                  `${(result.scaled * 100).toFixed(0)} %.${helped}`;
    say(`${text} ${outcome.message}`, outcome.recorded ? (result.success ? "ok" : "") : "bad");
    document.body.dataset.state = "submitted";
    document.body.dataset.recorded = String(outcome.recorded);
  }

  async function finish(reason) {
    if (state.closed) return;
    state.closed = true;
    for (const id of ["ask", "submit", "next", "finish"]) $(id).disabled = true;
    const outcome = await reporter.finish(reason, state.lastGrade);
    say(outcome.recorded ? `This attempt is closed. ${outcome.message}`
                         : `This attempt is closed, but ${outcome.message}`, outcome.recorded ? "ok" : "bad");
    document.body.dataset.state = "closed";
    document.body.dataset.recorded = String(outcome.recorded);
  }

  // ------------------------------------------------------------------------------------ start
  async function start() {
    loadModel();
    const documentRequest = fetch("activity.json").then((r) => r.json());
    const connection = await reporter.start();
    $("lms").textContent = connection.message;
    document.body.dataset.lms = connection.connected ? "connected" : "absent";
    state.doc = await documentRequest;
    $("title").textContent = state.doc.title || state.doc.module;
    $("instructions").textContent = `${view().instructions} Stuck? Ask the module — it runs here in your browser. ` +
                                    "Cells the module fills count for the module, not for you.";
    $("subtitle").textContent = `Module ${state.doc.module} ${state.doc.version} · ${state.doc.digest.slice(0, 19)}…`;
    render();
    $("ask").addEventListener("click", askModule);
    $("submit").addEventListener("click", submit);
    $("next").addEventListener("click", () => {
      if (state.closed) return;
      state.puzzleIndex = (state.puzzleIndex + 1) % state.doc.puzzles.length;
      render();
    });
    $("finish").addEventListener("click", () => finish("finish"));
    window.addEventListener("pagehide", () => finish("pagehide"));
    timings.visible = performance.now();
    document.body.dataset.state = "ready";
  }

  // For automation and tests: the module's answer to puzzle ``index`` as the page computes it.
  const answer = async (index) => {
    const a = await answerOf(state.doc.puzzles[index]);
    return { tokens: a.tokens, views: a.views, steps: a.steps, valid: a.valid };
  };
  window.trmActivity = { state, timings, answer, ready: null };
  window.trmActivity.ready = start().catch((error) => {
    say(`The activity could not start: ${error.message || error}`, "bad");
    document.body.dataset.state = "failed";
  });
})();
