// end2end/oidc-provider.mjs — a real OpenID Connect provider (the npm `oidc-provider`
// package) on loopback for the single sign-on journey, started by start-server.sh.
// One client, Slipway's, and one account, alice: requester in team payments. Its
// development login and consent pages accept any password: test use only.
//
//   OIDC_PORT      port to listen on (default 4100)
//   SLIPWAY_URL    Slipway's address, for the client's redirect URI (default http://127.0.0.1:3100)
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 4100);
const slipway = process.env.SLIPWAY_URL || 'http://127.0.0.1:3100';
const issuer = `http://127.0.0.1:${port}`;

const accounts = {
  alice: {
    sub: 'alice',
    preferred_username: 'alice',
    name: 'Alice (SSO)',
    email: 'alice@example.test',
    email_verified: true,
    // Keycloak-style group paths; Slipway drops the leading slash.
    groups: ['/payments'],
    roles: ['requester'],
  },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'slipway-e2e',
      client_secret: process.env.OIDC_CLIENT_SECRET || 'slipway-e2e-secret',
      redirect_uris: [`${slipway}/auth/oidc/callback`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  async findAccount(_ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { ...claims }; } };
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'groups', 'roles'],
    email: ['email', 'email_verified'],
  },
  // Put the scope's claims into the ID token itself: Slipway reads roles and teams there.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['slipway-e2e-only'] },
});

// Quiet the "this is a development setup" warnings; errors still print.
provider.on('server_error', (_ctx, err) => console.error('oidc-provider:', err));

provider.listen(port, '127.0.0.1', () => {
  console.error(`oidc-provider.mjs: issuer ${issuer}, client slipway-e2e -> ${slipway}`);
});
