// A throwaway OpenID Provider for the interop tests: panva's oidc-provider
// (a certified OpenID Provider), configured from a JSON document.
//
// Usage: OP_CONFIG='{"port": 4000, "clients": [...]}' node provider.mjs
//    or: node provider.mjs '{"port": 4000, ...}'
//
// Configuration (JSON):
//   port                  TCP port on 127.0.0.1 (required; the issuer is
//                         http://127.0.0.1:<port>, so pick the port first)
//   clients               list of client metadata objects: client_id,
//                         client_secret, redirect_uris,
//                         post_logout_redirect_uris,
//                         token_endpoint_auth_method, backchannel_logout_uri?
//                         (any other client metadata is passed through;
//                         grant_types defaults to authorization_code +
//                         refresh_token)
//   conformIdTokenClaims  default true: the ID token carries only sub and
//                         protocol claims, the rest only at UserInfo (/me);
//                         false puts the scopes' claims in the ID token too
//   accounts              login name -> claims (email, email_verified, name,
//                         groups, department, roles, ...). Any login name is
//                         accepted and becomes `sub`; unknown names get
//                         email <login>@example.com
//   claims                scope -> claim names (default below)
//   accessTokenTtl        seconds (default 3600); idTokenTtl, sessionTtl,
//                         refreshTokenTtl likewise
//   rotateRefreshToken    true: every refresh answers a new refresh token and
//                         consumes the old one (reusing a consumed one revokes
//                         the grant); default: oidc-provider's own rule (no
//                         rotation for confidential clients early in the
//                         token's life)
//   userinfoSubjects      login name -> another `sub` that UserInfo (/me)
//                         answers for that login (the ID token keeps the
//                         login); a misbehaving provider, for the relying
//                         party's Core 5.3.2 check
//
// Prints one line `READY <issuer>` on stdout once listening; exits 0 on
// SIGTERM or SIGINT.

import * as http from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

function readConfig() {
  const raw = process.argv[2] ?? process.env.OP_CONFIG;
  if (!raw) {
    throw new Error('no configuration: pass JSON in OP_CONFIG or as the first argument');
  }
  const config = JSON.parse(raw);
  if (!Number.isInteger(config.port) || config.port <= 0 || config.port > 65535) {
    throw new Error(`"port" must be a TCP port, got ${JSON.stringify(config.port)}`);
  }
  return config;
}

const DEFAULT_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name'],
  groups: ['groups'],
  department: ['department'],
  roles: ['roles'],
};

function seconds(value, fallback, name) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`"${name}" must be a positive integer (seconds), got ${JSON.stringify(value)}`);
  }
  return value;
}

function clientMetadata(client) {
  return {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    post_logout_redirect_uris: [],
    ...client,
  };
}

const config = readConfig();
const host = '127.0.0.1';
const issuer = `http://${host}:${config.port}`;
const accounts = config.accounts ?? {};

const userinfoSubjects = config.userinfoSubjects ?? {};

async function findAccount(ctx, login) {
  // UserInfo answers with `sub: accountId`; a configured override makes it
  // name someone else (the access token and grant still belong to `login`).
  const sub = ctx?.oidc?.route === 'userinfo'
    && Object.prototype.hasOwnProperty.call(userinfoSubjects, login)
    ? userinfoSubjects[login] : login;
  const known = Object.prototype.hasOwnProperty.call(accounts, login);
  const profile = known ? accounts[login] : { email: `${login}@example.com` };
  return {
    accountId: sub,
    // The provider keeps only the claims that the granted scopes (and the
    // `claims` parameter) ask for.
    async claims() {
      return { ...profile, sub };
    },
  };
}

const provider = new Provider(issuer, {
  clients: (config.clients ?? []).map(clientMetadata),
  findAccount,
  claims: config.claims ?? DEFAULT_CLAIMS,
  conformIdTokenClaims: config.conformIdTokenClaims ?? true,
  responseTypes: ['code'],
  pkce: { required: () => true },
  cookies: {
    keys: ['asgi-oidc-interop-cookie-key-1', 'asgi-oidc-interop-cookie-key-2'],
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    claimsParameter: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  // The default, spelled out: a refresh token needs the client to be allowed
  // the refresh_token grant and the grant to hold offline_access (which the
  // provider keeps only when the request has prompt=consent).
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  // oidc-provider guards its outgoing requests (back-channel logout, ...)
  // against special-use addresses: it destroys any socket to 127.0.0.0/8.
  // Here the relying parties are on loopback by design, so drop its guard.
  fetch(url, options) {
    const { dispatcher: _ssrfGuard, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  ...(config.rotateRefreshToken === undefined
    ? {} : { rotateRefreshToken: Boolean(config.rotateRefreshToken) }),
  ttl: {
    AccessToken: seconds(config.accessTokenTtl, 3600, 'accessTokenTtl'),
    IdToken: seconds(config.idTokenTtl, 3600, 'idTokenTtl'),
    Session: seconds(config.sessionTtl, 14 * 24 * 3600, 'sessionTtl'),
    RefreshToken: seconds(config.refreshTokenTtl, 24 * 3600, 'refreshTokenTtl'),
    Grant: 14 * 24 * 3600,
    Interaction: 3600,
    AuthorizationCode: 60,
  },
});

// Log the errors the provider swallows into its error pages, so a failing
// test's log (stderr) tells why.
for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
  'backchannel.error', 'userinfo.error', 'introspection.error', 'revocation.error']) {
  provider.on(event, (...args) => {
    const err = args.find((arg) => arg instanceof Error);
    console.error(`[oidc-provider] ${event}: ${err ? `${err.name}: ${err.message} ${err.error_description ?? ''}` : ''}`);
  });
}

const server = http.createServer(provider.callback());

function shutdown(signal) {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  // Never hang on a stuck connection.
  setTimeout(() => process.exit(0), 2000).unref();
  console.error(`[oidc-provider] ${signal}: shutting down`);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.on('error', (err) => {
  console.error(`[oidc-provider] cannot listen on ${host}:${config.port}: ${err.message}`);
  process.exit(1);
});

server.listen(config.port, host, () => {
  process.stdout.write(`READY ${issuer}\n`);
});
