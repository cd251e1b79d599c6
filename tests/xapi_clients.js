// Third-party xAPI clients against trm serve's LRS, driven by tests/test_xapi_clients.py.
//
//   node tests/xapi_clients.js xapi     ENDPOINT TOKEN   # npm @xapi/xapi
//   node tests/xapi_clients.js tincanjs ENDPOINT TOKEN   # TinCanJS
//   node tests/xapi_clients.js validate < statements.json # xapi-validation (Learning Locker's checker)
//
// Each client writes a statement and reads it back, writes and reads a state document, and voids the
// statement and reads the voided statement back; it prints one JSON object of what it read.
// NODE_PATH names the folder holding the npm packages (installed by .ci/run or the test).
"use strict";

const crypto = require("crypto");

const [mode, endpoint, token] = process.argv.slice(2);
const learner = {objectType: "Agent", mbox: `mailto:learner-${crypto.randomUUID()}@example.com`, name: "Node Learner"};
const activityId = "https://course.example/activities/node-client";

function statement() {
  return {
    id: crypto.randomUUID(), actor: learner,
    verb: {id: "http://adlnet.gov/expapi/verbs/experienced", display: {"en-US": "experienced"}},
    object: {objectType: "Activity", id: activityId, definition: {name: {"en-US": "Node client check"}}},
  };
}

async function withXapi() {
  const XAPI = require("@xapi/xapi").default;
  const xapi = new XAPI({endpoint, auth: XAPI.toBasicAuth("node", token), version: "1.0.3"});
  const sent = statement();
  const ids = (await xapi.sendStatement({statement: sent})).data;
  const read = (await xapi.getStatement({statementId: sent.id})).data;
  await xapi.setState({agent: learner, activityId, stateId: "bookmark", state: {page: 4}});
  const state = (await xapi.getState({agent: learner, activityId, stateId: "bookmark"})).data;
  await xapi.voidStatement({actor: learner, statementId: sent.id});
  const voided = (await xapi.getVoidedStatement({voidedStatementId: sent.id})).data;
  let stillThere;
  try {
    await xapi.getStatement({statementId: sent.id});
    stillThere = true;
  } catch (error) {
    stillThere = error.response ? error.response.status : String(error);
  }
  return {sent: sent.id, ids, read: read.id, state, voided: voided.id, readAfterVoid: stillThere};
}

function callback(resolve, reject) {
  return (err, result) => (err ? reject(new Error(`TinCanJS: ${err} ${result && result.responseText}`)) : resolve(result));
}

async function withTinCanJS() {
  const TinCan = require("tincanjs");
  TinCan.DEBUG = false;
  // TinCanJS 0.50 speaks xAPI up to 1.0.2 (sent as X-Experience-API-Version; the LRS accepts any 1.0.x)
  const lrs = new TinCan.LRS({endpoint: endpoint + "/", username: "node", password: token, allowFail: false,
                              version: "1.0.2"});
  const sent = statement();
  await new Promise((resolve, reject) => lrs.saveStatement(new TinCan.Statement(sent), {callback: callback(resolve, reject)}));
  const read = await new Promise((resolve, reject) => lrs.retrieveStatement(sent.id, {callback: callback(resolve, reject)}));
  const agent = new TinCan.Agent(learner);
  const activity = new TinCan.Activity({id: activityId});
  await new Promise((resolve, reject) => lrs.saveState("bookmark", {page: 4}, {
    activity, agent, contentType: "application/json", callback: callback(resolve, reject)}));
  const state = await new Promise((resolve, reject) => lrs.retrieveState("bookmark", {
    activity, agent, callback: callback(resolve, reject)}));
  const voiding = new TinCan.Statement({actor: learner, verb: {id: "http://adlnet.gov/expapi/verbs/voided"},
                                        target: new TinCan.StatementRef({id: sent.id})});
  await new Promise((resolve, reject) => lrs.saveStatement(voiding, {callback: callback(resolve, reject)}));
  const voided = await new Promise((resolve, reject) => lrs.retrieveVoidedStatement(sent.id, {callback: callback(resolve, reject)}));
  let contents = state.contents;
  if (typeof contents === "string") contents = JSON.parse(contents);
  return {sent: sent.id, ids: [sent.id], read: read.id, state: contents, voided: voided.id};
}

function validate() {
  const validateStatement = require("xapi-validation").default;
  const statements = JSON.parse(require("fs").readFileSync(0, "utf8"));
  return statements.map((s) => ({id: s.id, problems: validateStatement(s).map((w) => `${w.path}: ${w.message}`)}));
}

(async () => {
  const run = {xapi: withXapi, tincanjs: withTinCanJS, validate}[mode];
  if (!run) throw new Error(`unknown mode ${mode}`);
  process.stdout.write(JSON.stringify(await run()));
})().catch((error) => {
  process.stderr.write(error instanceof Error ? String(error.stack) : JSON.stringify(error));
  process.exit(1);
});
