// cmi5 reporting for activity.js, through the @xapi/cmi5 client (window.Cmi5): the launch sequence
// (launch parameters from the URL, the auth token from the fetch URL, LMS.LaunchData from the State
// resource, "initialized"), then "completed" / "passed" / "failed" as the learner's own work earns them
// (masteryScore from LMS.LaunchData), the module's help and each answer as allowed statements, and
// "terminated" at Finish. Every statement carries the launch's registration, session id and context template.
"use strict";

window.trmReporter = (function () {
  const session = { cmi5: null, launchData: null, passed: false, failed: false, completed: false, closed: false };
  const notConnected = { recorded: false, message: "No cmi5 platform is connected: this is not recorded." };
  const HELP_EXTENSION = "urn:trm-modules:xapi:extension:module-filled-cells";

  async function send(action) {
    try {
      await action();
      return { recorded: true, message: "Recorded by your learning platform." };
    } catch (error) {
      const detail = (error.response && JSON.stringify(error.response.data)) || error.message || String(error);
      console.warn(`cmi5: ${detail}`);
      return { recorded: false, message: `your platform did not record it (${detail.slice(0, 200)}).` };
    }
  }

  // A "cmi5 allowed" statement's context: the launch's registration and the LMS's context template (with the
  // session id), without the cmi5 category, which only cmi5-defined statements carry.
  function allowedContext() {
    const template = JSON.parse(JSON.stringify(session.launchData.contextTemplate || {}));
    return { ...template, registration: session.cmi5.getLaunchParameters().registration };
  }

  const resultsAllowed = () => session.launchData.launchMode === "Normal";
  const activityId = () => session.cmi5.getLaunchParameters().activityId;

  return {
    async start() {
      if (!window.Cmi5 || !Cmi5.isCmiAvailable) {
        return { connected: false, message: "Not launched by a cmi5 platform: your result will not be recorded." };
      }
      try {
        session.cmi5 = new Cmi5();
        await session.cmi5.initialize();
        session.launchData = session.cmi5.getLaunchData();
      } catch (error) {
        session.cmi5 = null;
        return { connected: false, message: `The learning platform refused the session: ${error.message || error}` };
      }
      const mode = session.launchData.launchMode;
      return { connected: true, message: `Connected to your learning platform (cmi5, ${mode} mode` +
               (mode === "Normal" ? ")." : "): results are not recorded in this mode.") };
    },

    // The module's help: an allowed statement of its own, so the platform's record shows where the module worked.
    async recordHelp(p, info) {
      if (!session.cmi5 || session.closed) return notConnected;
      const doc = window.trmActivity.state.doc;
      return send(() => session.cmi5.sendXapiStatement({
        actor: session.cmi5.getLaunchParameters().actor,
        verb: { id: "http://adlnet.gov/expapi/verbs/interacted", display: { "en-US": "interacted" } },
        object: { objectType: "Activity", id: `${activityId()}/module-help/${p.id}`,
                  definition: { type: "http://adlnet.gov/expapi/activities/interaction",
                                name: { "en-US": `Asked the module ${doc.module} ${doc.version} (${p.id})` },
                                description: { "en-US": `The module filled ${info.cells} cells (${info.views} views, ` +
                                                        `${info.steps} steps); they do not count for the learner.` } } },
        result: { extensions: { [HELP_EXTENSION]: info.cells } },
        context: allowedContext(),
        timestamp: new Date().toISOString(),
      }));
    },

    // The answer as an allowed fill-in interaction; then passed or failed (once each per session, never
    // failed after passed) by masteryScore on the learner's own cells, and completed once.
    async recordSubmission(p, result) {
      if (!session.cmi5 || session.closed) return notConnected;
      const doc = window.trmActivity.state.doc;
      const score = { scaled: Number(result.scaled.toFixed(4)), raw: result.mine, min: 0, max: result.blanks };
      const mastery = session.launchData.masteryScore;
      const passes = mastery === undefined || mastery === null ? result.success : score.scaled >= mastery;
      return send(async () => {
        await session.cmi5.interactionFillIn("puzzles", p.id, [result.response.map(result.label).join("")],
          [p.solution_tokens.map(result.label).join("")], { "en-US": `${doc.module} ${p.id}` },
          { "en-US": `${result.mine} of ${result.blanks} cells right by the learner` +
                     (result.byModule ? `, ${result.byModule} filled by the module` : "") }, result.success);
        if (!resultsAllowed()) return;
        if (passes && !session.passed) {
          await session.cmi5.pass(score);
          session.passed = true;
        } else if (!passes && !session.passed && !session.failed) {
          await session.cmi5.fail(score);
          session.failed = true;
        }
        if (!session.completed) {
          await session.cmi5.complete();
          session.completed = true;
        }
      });
    },

    async finish(reason, lastGrade) {
      if (!session.cmi5) return notConnected;
      session.closed = true;
      const outcome = await send(() => session.cmi5.terminate());
      if (!outcome.recorded) return outcome;
      const score = lastGrade ? ` Your score: ${(lastGrade.scaled * 100).toFixed(0)} %.` : "";
      return { recorded: true, message: `Your platform recorded this session.${score} You may close this window.` };
    },
  };
})();
