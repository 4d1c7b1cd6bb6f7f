// supabase-js (auth-js) OAuth sign-in against MadBase's /auth/v1, with GitHub and Google pointed
// at a fake provider on loopback: signInWithOAuth({skipBrowserRedirect}) in the implicit and PKCE
// flows (the browser's redirects followed with fetch), exchangeCodeForSession,
// signInWithIdToken with an id_token the fake provider signed, and linkIdentity/unlinkIdentity
// (manual linking is on for this run).
//
// Driven by tests/e2e/test_js_clients.py, which starts the fake provider and `madbase serve`
// configured for it, and passes MADBASE_URL, MADBASE_ANON_KEY, MADBASE_OAUTH_PROVIDER_URL,
// MADBASE_GOOGLE_ID_TOKEN and MADBASE_GOOGLE_NONCE (the raw nonce of that token).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env } from './support.mjs';

const url = env('MADBASE_URL');
const anonKey = env('MADBASE_ANON_KEY');
const providerUrl = env('MADBASE_OAUTH_PROVIDER_URL');
const app = `${new URL(url).origin}/welcome`;

// A client with its own in-memory storage (the PKCE verifier lives there) and no timers.
function client(flowType) {
  const items = new Map();
  const storage = {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
  return createClient(url, anonKey, {
    auth: { flowType, storage, persistSession: true, autoRefreshToken: false, detectSessionInUrl: false },
  });
}

// What a browser does with the authorize URL: follow redirects until one leaves for `until`.
async function browse(start, until) {
  let next = start;
  const seen = [];
  for (let i = 0; i < 5; i += 1) {
    const response = await fetch(next, { redirect: 'manual' });
    assert.ok([302, 303].includes(response.status), `${next} answered ${response.status}`);
    next = response.headers.get('location');
    seen.push(next);
    if (next.startsWith(until)) return { landed: new URL(next), seen };
  }
  assert.fail(`never reached ${until}: ${seen.join(' -> ')}`);
}

test('implicit flow: signInWithOAuth URL, provider consent, tokens in the fragment', async () => {
  const supabase = client('implicit');
  const { data, error } = await supabase.auth.signInWithOAuth({
    provider: 'github',
    options: { redirectTo: app, skipBrowserRedirect: true, queryParams: { login_hint: 'alice' } },
  });
  assert.equal(error, null);
  assert.equal(data.provider, 'github');
  assert.ok(data.url.startsWith(`${url}/auth/v1/authorize?provider=github`));
  const { landed, seen } = await browse(data.url, app);
  assert.ok(seen[0].startsWith(`${providerUrl}/login/oauth/authorize?`), seen[0]);
  const fragment = new URLSearchParams(landed.hash.slice(1));
  assert.equal(fragment.get('token_type'), 'bearer');
  assert.ok(fragment.get('provider_token').startsWith('gho_'));
  const { data: set, error: setError } = await supabase.auth.setSession({
    access_token: fragment.get('access_token'),
    refresh_token: fragment.get('refresh_token'),
  });
  assert.equal(setError, null);
  assert.equal(set.user.email, 'alice@example.com');
  const { data: me } = await supabase.auth.getUser();
  assert.deepEqual(
    me.user.identities.map((i) => [i.provider, i.id]),
    [['github', '1001']],
  );
  assert.equal(me.user.app_metadata.provider, 'github');
});

test('PKCE flow: ?code= then exchangeCodeForSession', async () => {
  const supabase = client('pkce');
  const { data, error } = await supabase.auth.signInWithOAuth({
    provider: 'github',
    options: { redirectTo: app, skipBrowserRedirect: true, queryParams: { login_hint: 'carol' } },
  });
  assert.equal(error, null);
  assert.match(data.url, /code_challenge_method=s256/);
  const { landed } = await browse(data.url, app);
  const code = landed.searchParams.get('code');
  assert.ok(code, landed.href);
  const { data: exchanged, error: exchangeError } = await supabase.auth.exchangeCodeForSession(code);
  assert.equal(exchangeError, null);
  assert.equal(exchanged.user.email, 'carol@example.com');
  assert.ok(exchanged.session.provider_token.startsWith('gho_'));
  const { data: current } = await supabase.auth.getSession();
  assert.equal(current.session.user.id, exchanged.user.id);
  // The code is single use: once exchanged, its flow state is gone.
  const again = await fetch(`${url}/auth/v1/token?grant_type=pkce`, {
    method: 'POST',
    headers: { apikey: anonKey, 'content-type': 'application/json', 'x-supabase-api-version': '2024-01-01' },
    body: JSON.stringify({ auth_code: code, code_verifier: 'x'.repeat(43) }),
  });
  assert.equal(again.status, 404);
  assert.equal((await again.json()).code, 'flow_state_not_found');
});

test('a provider refusal comes back as error parameters', async () => {
  const supabase = client('implicit');
  const { data } = await supabase.auth.signInWithOAuth({
    provider: 'github',
    options: { redirectTo: app, skipBrowserRedirect: true, queryParams: { login_hint: 'deny' } },
  });
  const { landed } = await browse(data.url, app);
  assert.equal(landed.searchParams.get('error'), 'access_denied');
  assert.equal(new URLSearchParams(landed.hash.slice(1)).get('error_description'), 'The user said no');
});

test('signInWithIdToken with a Google id_token and its nonce', async () => {
  const supabase = client('implicit');
  const { data, error } = await supabase.auth.signInWithIdToken({
    provider: 'google',
    token: env('MADBASE_GOOGLE_ID_TOKEN'),
    nonce: env('MADBASE_GOOGLE_NONCE'),
  });
  assert.equal(error, null);
  assert.equal(data.user.email, 'alice@example.com');
  assert.ok(data.user.identities.some((i) => i.provider === 'google'));
  const { error: wrongNonce } = await supabase.auth.signInWithIdToken({
    provider: 'google',
    token: env('MADBASE_GOOGLE_ID_TOKEN'),
    nonce: 'not-the-nonce',
  });
  assert.ok(wrongNonce);
  assert.equal(wrongNonce.status, 400);
  const { error: disabled } = await supabase.auth.signInWithIdToken({ provider: 'keycloak', token: 'x.y.z' });
  assert.equal(disabled.code, 'provider_disabled');
});

test('linkIdentity adds a GitHub identity to a password user; unlinkIdentity removes it', async () => {
  const supabase = client('implicit');
  const { data: signedUp, error: signUpError } = await supabase.auth.signUp({
    email: 'linker@example.com',
    password: 's3cret-pass',
  });
  assert.equal(signUpError, null);
  const userId = signedUp.user.id;
  const { data, error } = await supabase.auth.linkIdentity({
    provider: 'github',
    options: { redirectTo: app, skipBrowserRedirect: true, queryParams: { login_hint: 'bob' } },
  });
  assert.equal(error, null);
  assert.ok(data.url.startsWith(`${providerUrl}/login/oauth/authorize?`), data.url);
  const { landed } = await browse(data.url, app);
  const fragment = new URLSearchParams(landed.hash.slice(1));
  assert.ok(fragment.get('access_token'), landed.href);
  const { data: linked, error: linkedError } = await supabase.auth.setSession({
    access_token: fragment.get('access_token'),
    refresh_token: fragment.get('refresh_token'),
  });
  assert.equal(linkedError, null);
  assert.equal(linked.user.id, userId);
  const { data: identities } = await supabase.auth.getUserIdentities();
  assert.deepEqual(identities.identities.map((i) => i.provider).sort(), ['email', 'github']);
  const github = identities.identities.find((i) => i.provider === 'github');
  assert.equal(github.id, '1002');
  const { error: unlinkError } = await supabase.auth.unlinkIdentity(github);
  assert.equal(unlinkError, null);
  const { data: after } = await supabase.auth.getUserIdentities();
  assert.deepEqual(after.identities.map((i) => i.provider), ['email']);
  const email = after.identities[0];
  const { error: lastOne } = await supabase.auth.unlinkIdentity(email);
  assert.equal(lastOne.code, 'single_identity_not_deletable');
});

test('/settings lists the enabled providers', async () => {
  const response = await fetch(`${url}/auth/v1/settings`, { headers: { apikey: anonKey } });
  const settings = await response.json();
  assert.equal(settings.external.github, true);
  assert.equal(settings.external.google, true);
  assert.equal(settings.external.gitlab, false);
});
