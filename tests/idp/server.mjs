// Test identity provider for tokenflow's integration tests.
//
// A real, independently written authorization server (panva's oidc-provider) on loopback, plus
// our own login/consent pages and a few unauthenticated `/_test/*` admin endpoints. The contract
// the Rust harness relies on is documented in README.md next to this file; keep both in sync.
//
// Start: `node tests/idp/server.mjs` (any cwd). Prints exactly one stdout line when listening:
//   IDP_READY http://127.0.0.1:<port>
// Everything else goes to stderr. Exits on stdin EOF (so a crashed/dropped harness never leaks a
// node process) and on SIGTERM/SIGINT.

import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { X509Certificate, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

// ---------------------------------------------------------------------------------------------
// Process lifetime. Wired up first so that even a failing start-up cannot outlive the harness.
// ---------------------------------------------------------------------------------------------
const quit = (code = 0) => process.exit(code);
// IDP_IGNORE_STDIN=1 is for manual runs from non-interactive shells (`node server.mjs &` gets
// /dev/null as stdin and would exit at once). The harness must never set it.
if (process.env.IDP_IGNORE_STDIN !== '1') {
  process.stdin.on('end', () => quit(0));
  process.stdin.on('close', () => quit(0));
  process.stdin.on('error', () => quit(0));
  process.stdin.resume(); // flowing mode, otherwise 'end' is never emitted
}
process.on('SIGTERM', () => quit(0));
process.on('SIGINT', () => quit(0));

const log = (...args) => console.error('[idp]', ...args);

// ---------------------------------------------------------------------------------------------
// Storage adapter. The built-in adapter is a 1000-entry LRU that silently evicts live tokens
// under load, so we keep everything in plain Maps and only drop entries once they expire (lazily
// on read plus a periodic sweep). One store is shared by all models; keys are "<Model>:<id>".
// ---------------------------------------------------------------------------------------------
const store = new Map(); // key -> { payload, exp (epoch ms | undefined) }
const byGrant = new Map(); // grantId -> Set<key> of grant-bound artifacts
const byUid = new Map(); // Session uid -> key
const byUserCode = new Map(); // DeviceCode userCode -> key
const byClient = new Map(); // clientId -> Set<key> (Grants and tokens), for /_test/revoke
const issued = new Map(); // clientId -> Set<key> of every token ever stored (never pruned), for /_test/tokens

const addIndex = (map, k, key) => { if (!map.has(k)) map.set(k, new Set()); map.get(k).add(key); };
const delIndex = (map, k, key) => { const s = map.get(k); if (s) { s.delete(key); if (!s.size) map.delete(k); } };

function drop(key) {
  const entry = store.get(key);
  if (!entry) return;
  store.delete(key);
  const { grantId, uid, userCode, clientId } = entry.payload;
  if (grantId) delIndex(byGrant, grantId, key);
  if (clientId) delIndex(byClient, clientId, key);
  if (uid && byUid.get(uid) === key) byUid.delete(uid);
  if (userCode && byUserCode.get(userCode) === key) byUserCode.delete(userCode);
}

function live(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.exp !== undefined && entry.exp <= Date.now()) { drop(key); return undefined; }
  return entry;
}

setInterval(() => { for (const key of store.keys()) live(key); }, 5000).unref();

class MapAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    drop(key); // re-upserts (e.g. a re-registered Client) must not leave stale index entries
    store.set(key, { payload, exp: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
    if (payload.grantId) addIndex(byGrant, payload.grantId, key);
    // Client records carry client_id (snake case), not clientId, so they stay out of byClient.
    if (payload.clientId) { addIndex(byClient, payload.clientId, key); addIndex(issued, payload.clientId, key); }
    if (this.model === 'Session' && payload.uid) byUid.set(payload.uid, key);
    if (payload.userCode) byUserCode.set(payload.userCode, key);
  }

  async find(id) { return live(this.key(id))?.payload; }

  async findByUid(uid) { const key = byUid.get(uid); return key ? live(key)?.payload : undefined; }

  async findByUserCode(code) { const key = byUserCode.get(code); return key ? live(key)?.payload : undefined; }

  async consume(id) {
    const entry = live(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { drop(this.key(id)); }

  // oidc-provider calls this once per grant-bound model; only drop this model's artifacts.
  async revokeByGrantId(grantId) {
    for (const key of [...(byGrant.get(grantId) ?? [])]) {
      if (key.startsWith(`${this.model}:`)) drop(key);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Accounts and per-client test options.
// ---------------------------------------------------------------------------------------------
const ACCOUNTS = new Map([
  ['alice', { password: 'alice-password', name: 'Alice Example', email: 'alice@example.test' }],
  ['bob', { password: 'bob-password', name: 'Bob Example', email: 'bob@example.test' }],
]);

const testOptions = new Map(); // client_id -> options given to POST /_test/clients
const optionsFor = (client) => (client ? testOptions.get(client.clientId) : undefined) ?? {};

const tokenRequests = []; // records for GET /_test/stats

// ---------------------------------------------------------------------------------------------
// Small helpers (no extra npm dependencies: body parsing and HTML are done by hand).
// ---------------------------------------------------------------------------------------------
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>
${body}
</body></html>`;
}

async function readBody(ctx, limit = 64 * 1024) {
  let size = 0;
  const chunks = [];
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > limit) ctx.throw(413, 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// RFC 6749 §2.3.1: client_id and client_secret are form-urlencoded before Base64. This is *our*
// decoding, used only for the stats records, so tests can see what tokenflow actually sent even
// when oidc-provider rejects the request.
function formDecode(s) {
  try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; }
}

// The decoded JOSE header of a client assertion (RFC 7523), for the stats records; null if none.
function jwtHeader(assertion) {
  if (typeof assertion !== 'string') return null;
  try { return JSON.parse(Buffer.from(assertion.split('.')[0], 'base64url').toString('utf8')); } catch { return null; }
}

// The client certificate of a request on the HTTPS listener (node's TLS socket, DER → X509), or
// undefined on the plain listener or when the client sent none.
function clientCertificate(ctx) {
  const peer = ctx.socket?.getPeerCertificate?.(true);
  if (!peer || !peer.raw) return undefined;
  return new X509Certificate(peer.raw);
}

// The subject as one line, RDNs joined with commas in the order node lists them
// (e.g. `CN=tokenflow-client,O=Example`): what tls_client_auth_subject_dn is compared with.
const subjectDn = (cert) => cert.subject.split('\n').join(',');

function basicUser(header) {
  const m = /^basic\s+(\S*)\s*$/i.exec(header ?? '');
  if (!m) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return formDecode(i === -1 ? decoded : decoded.slice(0, i));
}

// ---------------------------------------------------------------------------------------------
// Provider configuration.
// ---------------------------------------------------------------------------------------------
function configuration() {
  // A fresh RS256 key per run: tests never need stable signatures across restarts.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

  return {
    adapter: MapAdapter,
    jwks: { keys: [jwk] },
    cookies: {
      keys: ['tokenflow-test-idp-cookie-key-1', 'tokenflow-test-idp-cookie-key-0'],
      // Default SameSite=None without Secure is dropped by Chromium on http:// (it then relies on
      // an extra ".legacy" cookie). Lax is enough: the session is only read on top-level GETs.
      long: { httpOnly: true, sameSite: 'lax' },
    },
    // Every client authentication method tokenflow implements (docs/connectors.md, "Client
    // authentication"), and the JWS algorithms of its client assertions.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'tls_client_auth', 'none'],
    enabledJWA: { clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256'] },
    clockTolerance: 0, // expiry tests use 2 s tokens; the default 15 s tolerance would hide that
    scopes: ['openid', 'profile', 'email', 'offline_access', 'api:read', 'api:write'],
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      // RFC 8707: any absolute URI is a resource server; its tokens carry it as `aud` (shown by
      // /api/whoami). Without a `resource` parameter nothing changes.
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: 'api:read api:write',
          audience: resourceIndicator,
          accessTokenFormat: 'opaque',
        }),
      },
      // RFC 8705 §2.1 (tls_client_auth) on the HTTPS listener: the client certificate is read from
      // the TLS socket itself, verified there against IDP_TLS_CA (see clientCertificate below).
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        getCertificate: (ctx) => clientCertificate(ctx),
        certificateAuthorized: (ctx) => ctx.socket?.authorized === true,
        certificateSubjectMatches: (ctx, property, expected) => {
          const cert = clientCertificate(ctx);
          if (!cert) return false;
          if (property === 'tls_client_auth_subject_dn') return subjectDn(cert) === expected;
          if (property === 'tls_client_auth_san_dns') return (cert.subjectAltName ?? '').split(', ').includes(`DNS:${expected}`);
          return false;
        },
      },
      // The device authorization grant (RFC 8628) with pages of our own: the defaults pull Google
      // Fonts. The confirm page's Continue/Abort buttons submit `op.deviceConfirmForm`; the sign-in
      // that follows uses the interaction pages below.
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx, form, out, err) => {
          ctx.body = page('Device sign-in', `${err ? `<p id="error">${esc(err.message ?? 'error')}</p>\n` : ''}${form}
<button id="device-continue" type="submit" form="op.deviceInputForm">Continue</button>`);
        },
        userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => {
          ctx.body = page('Confirm device', `<p>Client <span id="client">${esc(client.clientId)}</span> shows the code <code id="user-code">${esc(userCode)}</code></p>
${form}
<button id="device-confirm" type="submit" form="op.deviceConfirmForm">Continue</button>
<button id="device-abort" type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`);
        },
        successSource: async (ctx) => { ctx.body = page('Device signed in', '<p id="device-success">You may close this window.</p>'); },
      },
      // The default pages pull Google Fonts; the network is closed and a browser would hang.
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page('Sign out', `${form}<button id="logout" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
        },
        postLogoutSuccessSource: async (ctx) => { ctx.body = page('Signed out', '<p id="signed-out">You are signed out.</p>'); },
      },
    },
    // PKCE is optional so clients without it still work; when a challenge was sent the provider
    // still verifies it (wrong verifier -> invalid_grant).
    pkce: { methods: ['S256'], required: () => false },
    interactions: { url: (ctx, interaction) => `${ctx.oidc.issuer}/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', Object.entries(out)
        .map(([k, v]) => `<p><b>${esc(k)}</b>: <span id="${esc(k)}">${esc(v)}</span></p>`).join('\n'));
    },
    async findAccount(ctx, sub) {
      const account = ACCOUNTS.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, name: account.name, email: account.email }),
      };
    },
    // Default rule (refresh_token grant + offline_access, which check_scope only keeps with
    // prompt=consent) unless the test asked for refresh tokens unconditionally.
    async issueRefreshToken(ctx, client, code) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      return optionsFor(client).issue_refresh_token === true || code.scopes.has('offline_access');
    },
    // Deterministic per client (the default rotates public clients and RTs past 70 % of their
    // life, which would make refresh-counting tests flaky).
    rotateRefreshToken: (ctx) => optionsFor(ctx.oidc.client).rotate_refresh_token === true,
    ttl: {
      AccessToken: (ctx, token, client) => optionsFor(client).access_token_ttl ?? 3600,
      ClientCredentials: (ctx, token, client) => optionsFor(client).access_token_ttl ?? 600,
      RefreshToken: (ctx, token, client) => optionsFor(client).refresh_token_ttl ?? 14 * 24 * 3600,
      AuthorizationCode: 60,
      // `device_code_ttl` of POST /_test/clients makes a client's device codes expire soon.
      DeviceCode: (ctx, code, client) => optionsFor(client).device_code_ttl ?? 600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Koa middleware mounted in front of the provider's own routes.
// ---------------------------------------------------------------------------------------------

// Records every token endpoint hit (after the provider answered, so failures are included) and
// applies the per-client token_type override.
function tokenEndpointMiddleware() {
  return async (ctx, next) => {
    if (ctx.path !== '/token') return next();
    await next();
    const body = ctx.oidc?.body ?? {};
    const basic = ctx.get('authorization') ? basicUser(ctx.get('authorization')) : null;
    let authMethod = 'none';
    if (basic !== null) authMethod = 'basic';
    else if (body.client_assertion !== undefined) authMethod = 'jwt';
    else if (body.client_secret !== undefined) authMethod = 'post';
    const clientId = basic ?? body.client_id ?? null;
    const cert = clientCertificate(ctx);
    tokenRequests.push({
      grant_type: body.grant_type ?? null,
      tls: ctx.secure === true,
      client_certificate_subject: cert ? subjectDn(cert) : null,
      client_id: clientId,
      auth_method: authMethod,
      client_secret_in_body: body.client_secret !== undefined,
      assertion_header: jwtHeader(body.client_assertion),
      // The JOSE header of a JWT bearer grant's `assertion` (RFC 7523 §2.1), and the RFC 8707
      // `resource` parameter(s) as sent.
      grant_assertion_header: jwtHeader(body.assertion),
      resource: body.resource ?? null,
      status: ctx.status,
      error: ctx.status >= 400 ? (ctx.body?.error ?? null) : null,
      // Why the provider refused, which its answer does not say (e.g. `invalid_client` for a
      // replayed client assertion: "client assertion tokens must only be used once").
      error_detail: ctx.status >= 400 ? (ctx.state.errorDetail ?? null) : null,
      // When the request arrived (ms since the epoch): how far apart polls were.
      at: Date.now(),
    });
    const override = optionsFor(ctx.oidc?.client).token_type;
    if (override && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      ctx.body.token_type = override;
    }
    // `token_delay_ms`: a slow provider, which answers the client's token requests that late.
    const delay = optionsFor(ctx.oidc?.client).token_delay_ms;
    if (delay) await new Promise((resolve) => { setTimeout(resolve, delay); });
  };
}

// Device authorization answers (RFC 8628 §3.2): oidc-provider sends no `interval` (clients then
// wait 5 s); a client registered with `device_interval` gets that one, so tests poll quickly.
// Every device authorization request is recorded for GET /_test/stats like token requests.
function deviceAuthorizationMiddleware() {
  return async (ctx, next) => {
    if (ctx.path !== '/device/auth') return next();
    await next();
    const body = ctx.oidc?.body ?? {};
    const basic = ctx.get('authorization') ? basicUser(ctx.get('authorization')) : null;
    tokenRequests.push({
      grant_type: 'device_authorization',
      client_id: basic ?? body.client_id ?? null,
      auth_method: basic !== null ? 'basic' : body.client_assertion !== undefined ? 'jwt' : body.client_secret !== undefined ? 'post' : 'none',
      client_secret_in_body: body.client_secret !== undefined,
      assertion_header: jwtHeader(body.client_assertion),
      status: ctx.status,
      error: ctx.status >= 400 ? (ctx.body?.error ?? null) : null,
    });
    const interval = optionsFor(ctx.oidc?.client).device_interval;
    if (interval && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      ctx.body.interval = interval;
    }
  };
}

// Plays a provider that does not decode HTTP Basic client credentials (RFC 6749 §2.3.1 says it
// should), for clients registered with `basic_raw: true`: the id and secret after Base64 are
// compared exactly as sent. A match is handed on to oidc-provider re-encoded the RFC way (so it
// accepts it); anything else is refused with 401 invalid_client, as such providers do.
function rawBasicMiddleware() {
  const encode = (text) => encodeURIComponent(text);
  return async (ctx, next) => {
    if (ctx.path !== '/token' || ctx.method !== 'POST') return next();
    const m = /^basic\s+(\S*)\s*$/i.exec(ctx.get('authorization') ?? '');
    if (!m) return next();
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const id = i === -1 ? decoded : decoded.slice(0, i);
    if (testOptions.get(id)?.basic_raw !== true) return next();
    const secret = i === -1 ? '' : decoded.slice(i + 1);
    const registered = live(`Client:${id}`)?.payload?.client_secret;
    if (registered === undefined || secret !== registered) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Basic realm="token"');
      ctx.body = { error: 'invalid_client', error_description: 'client authentication failed' };
      return undefined;
    }
    ctx.req.headers.authorization = `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
    return next();
  };
}

function loginPage(uid, error) {
  return page('Sign in', `${error ? `<p id="error">${esc(error)}</p>\n` : ''}<form id="login-form" method="post" action="/interaction/${esc(uid)}/login">
<label>Login <input id="login" name="login" autocomplete="username" autofocus></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="submit" type="submit">Sign in</button>
</form>
<form id="cancel-form" method="post" action="/interaction/${esc(uid)}/abort"><button id="cancel" type="submit">Cancel</button></form>`);
}

function consentPage(uid, clientId, scopes) {
  return page('Authorize', `<p>Client <span id="client">${esc(clientId)}</span> requests:</p>
<ul id="scopes">${scopes.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<form id="consent-form" method="post" action="/interaction/${esc(uid)}/confirm"><button id="allow" type="submit">Allow</button></form>
<form id="deny-form" method="post" action="/interaction/${esc(uid)}/abort"><button id="deny" type="submit">Deny</button></form>`);
}

// Our own interaction pages. Results are handed back with interactionResult and a plain 303 so
// that both browsers and a manual cookie-keeping HTTP client can follow the redirect chain.
function interactionMiddleware(provider) {
  const finish = async (ctx, result) => {
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.set('Location', returnTo);
    ctx.body = '';
  };

  return async (ctx, next) => {
    const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(ctx.path);
    if (!m) return next();
    const [, uid, action] = m;
    ctx.set('Cache-Control', 'no-store');
    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== uid) throw new errors.InvalidRequest('interaction uid does not match the cookie');
      const { prompt, params } = details;

      if (!action && ctx.method === 'GET') {
        ctx.type = 'html';
        if (prompt.name === 'login') ctx.body = loginPage(uid);
        else if (prompt.name === 'consent') ctx.body = consentPage(uid, params.client_id, (params.scope ?? '').split(' ').filter(Boolean));
        else throw new errors.InvalidRequest(`unsupported prompt ${prompt.name}`);
        return undefined;
      }
      if (ctx.method !== 'POST' || !action) { ctx.status = 405; return undefined; }
      const form = new URLSearchParams(await readBody(ctx));

      if (action === 'abort') {
        return finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' });
      }
      if (action === 'login') {
        if (prompt.name !== 'login') throw new errors.InvalidRequest('not a login prompt');
        const login = form.get('login') ?? '';
        const account = ACCOUNTS.get(login);
        if (!account || account.password !== form.get('password')) {
          ctx.type = 'html';
          ctx.body = loginPage(uid, 'Invalid login or password.');
          return undefined;
        }
        return finish(ctx, { login: { accountId: login } });
      }
      // confirm: grant everything that was asked for, including offline_access and claims.
      if (prompt.name !== 'consent') throw new errors.InvalidRequest('not a consent prompt');
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      if (params.scope) grant.addOIDCScope(params.scope);
      const missingClaims = prompt.details.missingOIDCClaims;
      if (missingClaims?.length) grant.addOIDCClaims(missingClaims);
      for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      return finish(ctx, { consent: { grantId } });
    } catch (err) {
      ctx.status = err.statusCode ?? 400;
      ctx.type = 'html';
      ctx.body = page('Error', `<p id="error">${esc(err.error ?? 'error')}: ${esc(err.error_description ?? err.message)}</p>`);
      return undefined;
    }
  };
}

// Registers one client: `input` is the body of POST /_test/clients. Returns [status, body].
async function register(provider, input) {
  const json = (_ctx, status, body) => [status, body];
  const ctx = null;
  const { metadata } = input ?? {};
  if (!metadata || typeof metadata !== 'object' || typeof metadata.client_id !== 'string' || !metadata.client_id) {
    return json(ctx, 400, { error: 'metadata.client_id (string) is required' });
  }
  const opts = {};
  for (const k of ['rotate_refresh_token', 'issue_refresh_token', 'basic_raw']) {
    if (input[k] === undefined || input[k] === null) continue;
    if (typeof input[k] !== 'boolean') return json(ctx, 400, { error: `${k} must be a boolean` });
    opts[k] = input[k];
  }
  for (const k of ['access_token_ttl', 'refresh_token_ttl', 'device_code_ttl', 'device_interval', 'token_delay_ms']) {
    if (input[k] === undefined || input[k] === null) continue;
    if (!Number.isInteger(input[k]) || input[k] <= 0) return json(ctx, 400, { error: `${k} must be a positive integer` });
    opts[k] = input[k];
  }
  if (input.token_type !== undefined && input.token_type !== null) {
    if (typeof input.token_type !== 'string') return json(ctx, 400, { error: 'token_type must be a string' });
    opts.token_type = input.token_type;
  }
  // `public_key_pem`: a PEM public key (SPKI) that becomes the client's `jwks` (private_key_jwt,
  // and the JWT bearer grant's assertions); `public_key_kid` names it (a service account key's
  // `private_key_id`), and assertions must then carry that `kid`.
  if (input.public_key_pem !== undefined && input.public_key_pem !== null) {
    if (typeof input.public_key_pem !== 'string') return json(ctx, 400, { error: 'public_key_pem must be a string' });
    if (input.public_key_kid !== undefined && typeof input.public_key_kid !== 'string') return json(ctx, 400, { error: 'public_key_kid must be a string' });
    try {
      const jwk = createPublicKey(input.public_key_pem).export({ format: 'jwk' });
      if (input.public_key_kid) jwk.kid = input.public_key_kid;
      metadata.jwks = { keys: [jwk] };
    } catch (err) {
      return json(ctx, 400, { error: 'public_key_pem is not a PEM public key', error_description: err.message });
    }
  }
  try {
    await provider.Client.validate(metadata); // same checks as for statically configured clients
  } catch (err) {
    let description = err.error_description ?? err.message;
    // RFC 6749 Appendix A: client_id/client_secret are VSCHAR (%x20-7E); oidc-provider enforces it.
    if (/[^\x20-\x7E]/.test(`${metadata.client_id}${metadata.client_secret ?? ''}`)) {
      description += ' (oidc-provider only accepts printable ASCII %x20-7E in client_id and client_secret)';
    }
    return json(ctx, 400, { error: err.error ?? 'invalid_client_metadata', error_description: description });
  }
  // Client.find falls back to the adapter and caches by a hash of the stored metadata, so a
  // re-registration with different metadata is picked up immediately.
  await new MapAdapter('Client').upsert(metadata.client_id, metadata);
  testOptions.set(metadata.client_id, opts);
  return json(ctx, 201, { client_id: metadata.client_id });
}

// A tiny protected API (a resource server): GET /api/whoami with `Authorization: Bearer <token>`
// answers what the token is (any access token or client-credentials token of this IdP), or 401.
// tokenflow's examples and tests call it with the tokens they obtained, as they would call Graph.
function resourceApiMiddleware(provider) {
  return async (ctx, next) => {
    if (ctx.path !== '/api/whoami') return next();
    const match = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization') ?? '');
    const value = match?.[1];
    const token = value
      ? (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value))
      : undefined;
    if (!token || token.isExpired) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      ctx.body = { error: 'invalid_token' };
      return;
    }
    ctx.body = { active: true, client_id: token.clientId, scope: token.scope ?? '', sub: token.accountId ?? null, aud: token.aud ?? null };
  };
}

// Unauthenticated admin API for the test harness (the server is bound to loopback only).
function testAdminMiddleware(provider) {
  const json = (ctx, status, body) => { ctx.status = status; ctx.body = body; };

  async function registerClient(ctx) {
    let input;
    try { input = JSON.parse(await readBody(ctx)); } catch { return json(ctx, 400, { error: 'invalid JSON body' }); }
    const [status, result] = await register(provider, input);
    return json(ctx, status, result);
  }

  async function revokeClient(ctx) {
    let input;
    try { input = JSON.parse(await readBody(ctx)); } catch { return json(ctx, 400, { error: 'invalid JSON body' }); }
    const clientId = input?.client_id;
    if (typeof clientId !== 'string') return json(ctx, 400, { error: 'client_id (string) is required' });
    const grantIds = new Set();
    let clientCredentials = 0;
    for (const key of [...(byClient.get(clientId) ?? [])]) {
      const entry = live(key);
      if (!entry) continue;
      if (key.startsWith('Grant:')) grantIds.add(key.slice('Grant:'.length));
      else if (entry.payload.grantId) grantIds.add(entry.payload.grantId);
      else if (key.startsWith('ClientCredentials:')) { drop(key); clientCredentials += 1; }
    }
    for (const grantId of grantIds) {
      for (const key of [...(byGrant.get(grantId) ?? [])]) drop(key);
      drop(`Grant:${grantId}`);
    }
    return json(ctx, 200, { revoked: grantIds.size, client_credentials_tokens: clientCredentials });
  }

  return async (ctx, next) => {
    if (!ctx.path.startsWith('/_test/')) return next();
    ctx.set('Cache-Control', 'no-store');
    if (ctx.path === '/_test/clients' && ctx.method === 'POST') return registerClient(ctx);
    if (ctx.path === '/_test/revoke' && ctx.method === 'POST') return revokeClient(ctx);
    // Every live token value of a client, so tests can assert that none of them leaked anywhere.
    if (ctx.path === '/_test/tokens' && ctx.method === 'GET') {
      const clientId = ctx.query.client_id;
      const tokens = { access_tokens: [], refresh_tokens: [], client_credentials: [], authorization_codes: [], device_codes: [] };
      const kinds = { AccessToken: 'access_tokens', RefreshToken: 'refresh_tokens', ClientCredentials: 'client_credentials', AuthorizationCode: 'authorization_codes', DeviceCode: 'device_codes' };
      for (const key of issued.get(clientId) ?? []) {
        const [model, ...rest] = key.split(':');
        if (kinds[model]) tokens[kinds[model]].push(rest.join(':'));
      }
      return json(ctx, 200, tokens);
    }
    if (ctx.path === '/_test/stats' && ctx.method === 'GET') {
      const clientId = ctx.query.client_id;
      const list = typeof clientId === 'string' ? tokenRequests.filter((r) => r.client_id === clientId) : tokenRequests;
      return json(ctx, 200, { token_requests: list });
    }
    return json(ctx, 404, { error: 'not found' });
  };
}


// ---------------------------------------------------------------------------------------------
// Extension grants (registered with provider.registerGrantType): RFC 8693 token exchange and the
// RFC 7523 JWT bearer grant, both as Microsoft Entra's on-behalf-of flow (requested_token_use =
// on_behalf_of, the assertion is a user's access token) and as Google's service accounts do it
// (the assertion is a JWT signed with a key registered for the client). Each validates for real.
// ---------------------------------------------------------------------------------------------
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const first = (value) => (Array.isArray(value) ? value[0] : value) || undefined;
const single = (value, name) => {
  if (Array.isArray(value) && value.length > 1) throw new errors.InvalidTarget(`only one ${name} is supported`);
  return first(value);
};

// A live access token (user or client credentials) this IdP issued, else invalid_grant.
async function issuedAccessToken(provider, value, what) {
  const token = value ? (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value)) : undefined;
  if (!token || token.isExpired) throw new errors.InvalidGrant(`${what} is not a valid access token of this issuer`);
  return token;
}

// Every requested scope must be among `allowed` (the subject token's, or the client's).
function checkScope(requested, allowed) {
  const allow = new Set((allowed ?? '').split(' ').filter(Boolean));
  for (const scope of (requested ?? '').split(' ').filter(Boolean)) {
    if (!allow.has(scope)) throw new errors.InvalidScope('requested scope is not allowed', scope);
  }
}

// Issues an access token for the client: a user's (AccessToken) or the client's own
// (ClientCredentials), with `aud` when an audience or resource was asked for.
async function issue(ctx, { accountId, grantId, scope, audience }) {
  const { client, provider } = ctx.oidc;
  const token = accountId
    ? new provider.AccessToken({ accountId, client, grantId, scope: scope || undefined, gty: 'token_exchange' })
    : new provider.ClientCredentials({ client, scope: scope || undefined });
  if (audience) token.setAudience(audience);
  const value = await token.save();
  return { access_token: value, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: token.expiration, scope: token.scope || undefined };
}

async function tokenExchangeGrant(ctx, next) {
  const { params } = ctx.oidc;
  if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter subject_token');
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`unsupported subject_token_type ${params.subject_token_type}`);
  const subject = await issuedAccessToken(ctx.oidc.provider, params.subject_token, 'subject_token');
  if (params.actor_token) {
    if (params.actor_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest('unsupported or missing actor_token_type');
    await issuedAccessToken(ctx.oidc.provider, params.actor_token, 'actor_token');
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`unsupported requested_token_type ${params.requested_token_type}`);
  }
  const scope = params.scope ?? subject.scope;
  checkScope(scope, subject.scope);
  const audience = single(params.resource, 'resource') ?? single(params.audience, 'audience');
  ctx.body = await issue(ctx, { accountId: subject.accountId, grantId: subject.grantId, scope, audience });
  await next();
}

function decodeJwt(assertion) {
  const parts = assertion.split('.');
  if (parts.length !== 3) throw new errors.InvalidGrant('assertion is not a JWT');
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
      claims: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
      signed: Buffer.from(`${parts[0]}.${parts[1]}`),
      signature: Buffer.from(parts[2], 'base64url'),
    };
  } catch {
    throw new errors.InvalidGrant('assertion is not a JWT');
  }
}

async function jwtBearerGrant(ctx, next) {
  const { params, client, provider } = ctx.oidc;
  if (!params.assertion) throw new errors.InvalidRequest('missing required parameter assertion');
  const audience = single(params.resource, 'resource');
  if (params.requested_token_use === 'on_behalf_of') {
    // Entra on-behalf-of: the assertion is the user's token the calling API received.
    if (!params.scope) throw new errors.InvalidRequest('missing required parameter scope');
    const subject = await issuedAccessToken(provider, params.assertion, 'assertion');
    if (!subject.accountId) throw new errors.InvalidGrant('the assertion does not represent a user');
    checkScope(params.scope, client.scope);
    ctx.body = await issue(ctx, { accountId: subject.accountId, grantId: subject.grantId, scope: params.scope, audience });
    return next();
  }
  // RFC 7523 §3: a JWT signed with a key registered for this client (its jwks).
  const { header, claims, signed, signature } = decodeJwt(params.assertion);
  if (header.alg !== 'RS256') throw new errors.InvalidGrant('assertion must be signed RS256');
  const jwk = (client.jwks?.keys ?? []).find((key) => key.kty === 'RSA' && (!key.kid || key.kid === header.kid));
  if (!jwk) throw new errors.InvalidGrant('no registered key matches the assertion');
  if (!verify('sha256', signed, createPublicKey({ key: jwk, format: 'jwk' }), signature)) {
    throw new errors.InvalidGrant('assertion signature is invalid');
  }
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== client.clientId || claims.sub !== claims.iss) throw new errors.InvalidGrant('assertion iss and sub must be the client');
  if (claims.aud !== ctx.oidc.urlFor('token')) throw new errors.InvalidGrant('assertion aud must be the token endpoint');
  if (!Number.isInteger(claims.exp) || claims.exp <= now) throw new errors.InvalidGrant('assertion is expired');
  if (!Number.isInteger(claims.iat) || claims.iat > now + 5 || claims.exp - claims.iat > 3600) {
    throw new errors.InvalidGrant('assertion iat is missing, in the future, or more than an hour before exp');
  }
  const scope = claims.scope ?? params.scope;
  checkScope(scope, client.scope);
  ctx.body = await issue(ctx, { scope, audience });
  return next();
}

function registerExtensionGrants(provider) {
  provider.registerGrantType(TOKEN_EXCHANGE, tokenExchangeGrant,
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'audience', 'resource', 'scope', 'requested_token_type'],
    ['audience', 'resource']);
  provider.registerGrantType(JWT_BEARER, jwtBearerGrant, ['assertion', 'scope', 'requested_token_use', 'resource'], ['resource']);
}

// ---------------------------------------------------------------------------------------------
// Start-up: bind first (port 0 -> ephemeral), then build the provider, because the issuer must
// contain the real port.
// ---------------------------------------------------------------------------------------------
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => handler(req, res));
server.on('error', (err) => { log('listen failed:', err.message); quit(1); });

const port = Number.parseInt(process.env.IDP_PORT ?? '0', 10) || 0;
server.listen(port, '127.0.0.1', async () => {
  // IDP_TLS_CERT, IDP_TLS_KEY, IDP_TLS_CA (PEM files): a second listener with HTTPS that asks for
  // a client certificate (RFC 8705). Certificates that do not chain to IDP_TLS_CA still reach the
  // provider, which refuses them with invalid_client (certificateAuthorized above). With
  // IDP_TLS_ISSUER=1 the HTTPS listener's address is the issuer (discovery over a private CA).
  let tlsBase = null;
  if (process.env.IDP_TLS_CERT) {
    const tls = createTlsServer({
      cert: readFileSync(process.env.IDP_TLS_CERT),
      key: readFileSync(process.env.IDP_TLS_KEY),
      ca: readFileSync(process.env.IDP_TLS_CA),
      requestCert: true,
      rejectUnauthorized: false,
    }, (req, res) => handler(req, res));
    tls.on('error', (err) => { log('TLS listen failed:', err.message); quit(1); });
    await new Promise((resolve) => { tls.listen(0, '127.0.0.1', resolve); });
    tlsBase = `https://127.0.0.1:${tls.address().port}`;
    process.stdout.write(`IDP_TLS ${tlsBase}\n`);
  }
  const issuer = process.env.IDP_TLS_ISSUER === '1' && tlsBase ? tlsBase : `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  registerExtensionGrants(provider);
  provider.use(tokenEndpointMiddleware());
  provider.use(rawBasicMiddleware());
  provider.use(deviceAuthorizationMiddleware());
  provider.use(interactionMiddleware(provider));
  provider.use(testAdminMiddleware(provider));
  provider.use(resourceApiMiddleware(provider));
  // Surface unexpected server errors; expected OAuth errors are the tests' business.
  provider.on('server_error', (ctx, err) => log('server_error', ctx.method, ctx.path, err));
  provider.on('grant.error', (ctx, err) => { ctx.state.errorDetail = err.error_detail ?? null; });
  handler = provider.callback();
  // IDP_CLIENTS_FILE: a JSON array of POST /_test/clients bodies, registered before READY (the demo).
  if (process.env.IDP_CLIENTS_FILE) {
    const list = JSON.parse(readFileSync(process.env.IDP_CLIENTS_FILE, 'utf8'));
    for (const input of list) {
      const [status, result] = await register(provider, input);
      if (status !== 201) { log('client registration failed:', JSON.stringify(result)); quit(1); }
    }
  }
  process.stdout.write(`IDP_READY ${issuer}\n`);
});

