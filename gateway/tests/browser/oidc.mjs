// A certified OpenID provider (oidc-provider) on loopback, for the console's single
// sign-on test: one public client (PKCE required) whose redirect URI is given, and three
// users whose `groups` claim makes an administrator, a viewer, and nobody.
//   node oidc.mjs '{"clientId": "...", "redirectUri": "..."}'
// Prints {"issuer": "..."} once it listens, then serves until killed.
import http from 'node:http';
import Provider from 'oidc-provider';

const { clientId, redirectUri } = JSON.parse(process.argv[2]);
const users = {
  alice: { email: 'alice@example.com', groups: ['otp-admins', 'staff'] },
  bob: { email: 'bob@example.com', groups: ['otp-viewers'] },
  carol: { email: 'carol@example.com', groups: ['staff'] },
};

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'none',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email'], profile: ['preferred_username', 'groups'] },
  // The groups go into the ID token itself, as Okta's and Auth0's group claims do.
  conformIdTokenClaims: false,
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, preferred_username: id, ...(users[id] ?? { groups: [] }) }),
  }),
  cookies: { keys: ['console-sso-test-cookie-key'] },
});
server.on('request', provider.callback());
console.log(JSON.stringify({ issuer }));
