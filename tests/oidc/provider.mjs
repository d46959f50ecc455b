// A real OpenID Connect provider (node-oidc-provider) for rollgate's
// sign-in tests. Started by tests/it/oidc.rs; talks over stdin/stdout:
//
//   -> "PORT <n>"                 listening on 127.0.0.1:<n> (issuer http://$ISSUER_HOST:<n>,
//                                 127.0.0.1 unless set)
//   <- "CLIENT <redirect_uri>"    register rollgate's client with this redirect URI
//   -> "READY"
//
// Accounts: the development login form takes any name and password (the
// provider's own login is not what these tests check); the account's
// groups come from ACCOUNTS below (other names have none).
//
// A test can ask for the next token answer to be tampered with, to check
// that rollgate refuses it: GET /__test/tamper?aud=X, ?nonce=X or ?name=X
// re-signs the next ID token with that audience, nonce or
// preferred_username (with the provider's own key, so only the claim is
// wrong).
import http from 'node:http';
import readline from 'node:readline';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const ACCOUNTS = {
  ada: ['rollgate-admins', 'eng'],
  otto: ['rollgate-ops'],
  vera: ['eng'],
  mia: ['marketing'],
  vic: ['eng'],
};

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
let tamper = null;
let provider = null;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/__test/tamper') {
    tamper = Object.fromEntries(url.searchParams);
    res.end('ok');
    return;
  }
  if (!provider) {
    res.statusCode = 503;
    res.end('not ready');
    return;
  }
  provider.callback()(req, res);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const [command, redirectUri] = line.trim().split(/\s+/);
  if (command !== 'CLIENT') return;
  // ISSUER_HOST=localhost makes the provider another site than a rollgate
  // on 127.0.0.1 (as a company's provider is), for the browser test.
  const issuer = `http://${process.env.ISSUER_HOST ?? '127.0.0.1'}:${server.address().port}`;
  provider = new Provider(issuer, {
    clients: [{
      client_id: 'rollgate',
      client_secret: 'rollgate-test-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: ['rollgate-test-cookie-key'] },
    pkce: { required: () => true },
    // Claims go in the ID token (not only userinfo), as most company
    // providers are set up to do for groups.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'groups'],
      email: ['email'],
    },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            preferred_username: id,
            email: `${id}@example.test`,
            groups: ACCOUNTS[id] ?? [],
          };
        },
      };
    },
  });
  provider.proxy = false;
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && tamper && ctx.body && ctx.body.id_token) {
      const claims = jose.decodeJwt(ctx.body.id_token);
      if (tamper.aud) claims.aud = tamper.aud.split(',');
      if (tamper.nonce) claims.nonce = tamper.nonce;
      if (tamper.name) claims.preferred_username = tamper.name;
      ctx.body.id_token = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
        .sign(privateKey);
      tamper = null;
    }
  });
  process.stdout.write('READY\n');
});
