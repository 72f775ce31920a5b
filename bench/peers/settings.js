// Node-RED settings for the Node-RED peer of the tokenflow benchmark suite (see README.md).
//
// Started by the harness as
//   node bench/peers/node_modules/node-red/red.js --settings bench/peers/settings.js --userDir <temp dir>
// with NR_PORT set. The flow is read from bench/peers/flows.json (read only: Node-RED writes the flow
// file, its `.flows.json.backup` and `flows_cred.json` next to it only on a deploy, and there is no
// editor/admin API to deploy with). Everything Node-RED writes at start-up (`package.json`,
// `.config.*.json`) goes into --userDir.
'use strict';

const path = require('path');

const port = Number.parseInt(process.env.NR_PORT ?? '', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  throw new Error(`NR_PORT must be set to a TCP port (got ${JSON.stringify(process.env.NR_PORT)})`);
}

const levelNames = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace', 98: 'audit', 99: 'metric' };

// Log lines go to stderr (Node-RED's own "console" logger writes to stdout).
function stderrLogger() {
  return (msg) => {
    let text = msg.msg;
    if (text instanceof Error) {
      text = text.stack || text.message;
    } else if (typeof text === 'object' && text !== null) {
      text = text.message ?? (() => {
        try {
          return JSON.stringify(text, (k, v) => (k === 'req' || k === 'res' ? undefined : v));
        } catch {
          return String(text);
        }
      })();
    }
    const node = msg.type ? `[${msg.type}:${msg.name || msg.id}] ` : '';
    process.stderr.write(`node-red [${levelNames[msg.level] ?? msg.level}] ${node}${text}\n`);
  };
}

module.exports = {
  uiHost: '127.0.0.1',
  uiPort: port,

  flowFile: path.join(__dirname, 'flows.json'),
  flowFilePretty: true,
  // The flow holds no credentials (client id/secret come from env vars); never prompt for or
  // generate a credentials encryption key.
  credentialSecret: false,

  // No editor, no admin HTTP API; the flows' `http in` nodes are served at the root.
  httpAdminRoot: false,
  httpNodeRoot: '/',
  disableEditor: true,

  diagnostics: { enabled: false, ui: false },
  runtimeState: { enabled: false, ui: false },
  telemetry: { enabled: false, updateNotification: false },

  logging: {
    // Only this handler: no "console" key, so nothing is logged to stdout.
    stderr: { level: 'warn', metrics: false, audit: false, handler: stderrLogger },
  },

  externalModules: {
    autoInstall: false,
    palette: { allowInstall: false, allowUpload: false },
    modules: { allowInstall: false },
  },
  functionExternalModules: false,
  exportGlobalContextKeys: false,
  contextStorage: { default: { module: 'memory' } },

  editorTheme: {
    projects: { enabled: false },
    multiplayer: { enabled: false },
  },
};
