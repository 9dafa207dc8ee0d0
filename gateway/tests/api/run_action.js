// Runs a shipped Auth0 Action the way Auth0 does: calls its handler with an event and an
// `api` object, then prints what the Action did as JSON.
//
// usage: node run_action.js ACTION.js HANDLER EVENT.json GATEWAY_URL GATEWAY_TOKEN
'use strict';
const fs = require('fs');
const path = require('path');

const [actionPath, handler, eventPath, url, token] = process.argv.slice(2);
// An Action's own logging goes to stderr: stdout carries only what it did, as JSON.
console.log = (...args) => { process.stderr.write(`${args.join(' ')}\n`); };
const action = require(path.resolve(actionPath));
const event = JSON.parse(fs.readFileSync(eventPath, 'utf8'));
event.secrets = { GATEWAY_URL: url, GATEWAY_TOKEN: token };

const calls = { retry: null, drop: null, threw: null };
const api = {
  notification: {
    retry: (reason) => { calls.retry = reason === undefined ? '' : reason; },
    drop: (reason) => { calls.drop = reason === undefined ? '' : reason; },
  },
  cache: { get: () => undefined, set: () => ({ type: 'success' }), delete: () => ({ type: 'success' }) },
};

action[handler](event, api)
  .catch((error) => { calls.threw = String(error && error.message); })
  .finally(() => { process.stdout.write(JSON.stringify(calls)); });
