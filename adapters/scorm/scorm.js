// SCORM 2004 4th Edition reporting for activity.js, through the runtime API API_1484_11 the platform provides.
// Each call's error code is checked: a result the platform did not accept is said to be not recorded.
"use strict";

window.trmReporter = (function () {
  const session = { api: null, startedAt: 0, submitted: false, closed: false };

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

  // Runs the calls in order; the outcome names the first that failed.
  function calls(list) {
    for (const [name, ...args] of list) {
      const value = session.api[name](...args);
      const code = String(session.api.GetLastError());
      const failed = code !== "0" || ((name === "Commit" || name === "Terminate" || name === "Initialize" ||
                                       name === "SetValue") && String(value) !== "true");
      if (failed) {
        const message = `${name}(${args.join(", ")}) failed with error ${code}: ${session.api.GetErrorString(code)}`;
        console.warn(`SCORM ${message}`);
        return { recorded: false, message: `your platform did not record it (${message}).` };
      }
    }
    return { recorded: true, message: "Recorded by your platform." };
  }

  const notConnected = { recorded: false, message: "No learning platform is connected: this is not recorded." };
  // SCORM time(second,10,2): YYYY-MM-DDThh:mm:ss.ss, here in UTC.
  const timestamp = () => new Date().toISOString().replace(/(\.\d{2})\d*Z$/, "$1Z");
  const interactionCount = () => Number(session.api.GetValue("cmi.interactions._count")) || 0;
  const interactionId = (doc, p, what) => `urn:trm-modules:${doc.module}:${doc.version}:${p.id}:${what}`;

  return {
    async start() {
      session.api = findApi(window);
      if (!session.api) return { connected: false, message: "No learning platform found: your result will not be recorded." };
      const started = calls([["Initialize", ""]]);
      if (!started.recorded) {
        session.api = null;
        return { connected: false, message: `The learning platform refused the session: ${started.message}` };
      }
      session.startedAt = Date.now();
      if (session.api.GetValue("cmi.completion_status") !== "completed") {
        calls([["SetValue", "cmi.completion_status", "incomplete"]]);
      }
      return { connected: true, message: "Connected to your learning platform (SCORM 2004)." };
    },

    // The module's help is an interaction of its own, so a teacher sees where the module worked.
    async recordHelp(p, info) {
      if (!session.api || session.closed) return notConnected;
      const doc = window.trmActivity.state.doc;
      const n = `cmi.interactions.${interactionCount()}.`;
      return calls([
        ["SetValue", n + "id", interactionId(doc, p, `module-help-${Date.now()}`)],
        ["SetValue", n + "type", "other"],
        ["SetValue", n + "timestamp", timestamp()],
        ["SetValue", n + "description", `Asked the module ${doc.module} ${doc.version}: it filled ${info.cells} cells ` +
                                        `(${info.views} views, ${info.steps} steps); these do not count for the learner`],
        ["SetValue", n + "learner_response", `module filled ${info.cells} cells`],
        ["SetValue", n + "result", "neutral"],
        ["Commit", ""],
      ]);
    },

    // Score and success are the learner's own cells only (activity.js grade()).
    async recordSubmission(p, result) {
      if (!session.api || session.closed) return notConnected;
      const doc = window.trmActivity.state.doc;
      const n = `cmi.interactions.${interactionCount()}.`;
      session.submitted = true;
      return calls([
        ["SetValue", n + "id", interactionId(doc, p, "answer")],
        ["SetValue", n + "type", "fill-in"],
        ["SetValue", n + "timestamp", timestamp()],
        ["SetValue", n + "description", `${doc.module} ${doc.version} ${p.id}: ${result.mine} of ${result.blanks} ` +
                                        `cells right by the learner` + (result.byModule ? `, ${result.byModule} filled by the module` : "")],
        ["SetValue", n + "learner_response", result.response.map(result.label).join("")],
        ["SetValue", n + "correct_responses.0.pattern", p.solution_tokens.map(result.label).join("")],
        ["SetValue", n + "result", result.success ? "correct" : "incorrect"],
        ["SetValue", "cmi.score.min", "0"],
        ["SetValue", "cmi.score.max", String(result.blanks)],
        ["SetValue", "cmi.score.raw", String(result.mine)],
        ["SetValue", "cmi.score.scaled", result.scaled.toFixed(4)],
        ["SetValue", "cmi.success_status", result.success ? "passed" : "failed"],
        ["SetValue", "cmi.progress_measure", "1"],
        ["SetValue", "cmi.completion_status", "completed"],
        ["Commit", ""],
      ]);
    },

    // Finish: a normal exit. Leaving the page before submitting suspends the attempt instead.
    async finish(reason, lastGrade) {
      if (!session.api) return notConnected;
      session.closed = true;
      const seconds = (Date.now() - session.startedAt) / 1000;
      const exit = reason === "finish" || session.submitted ? "normal" : "suspend";
      const outcome = calls([
        ["SetValue", "cmi.session_time", `PT${seconds.toFixed(2)}S`],
        ["SetValue", "cmi.exit", exit],
        ["Commit", ""],
        ["Terminate", ""],
      ]);
      if (!outcome.recorded) return outcome;
      const score = lastGrade ? ` Your score: ${(lastGrade.scaled * 100).toFixed(0)} %.` : "";
      return { recorded: true, message: `Your platform recorded this attempt.${score} You may close this window.` };
    },
  };
})();
