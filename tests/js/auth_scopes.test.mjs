// supabase-js signOut scopes and anonymous sign-in (tests/e2e/test_js_clients.py turns
// MADBASE_AUTH_ANONYMOUS_USERS on for this run).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env, options } from './support.mjs';

const url = env('MADBASE_URL');
const client = () => createClient(url, env('MADBASE_ANON_KEY'), options);
const PASSWORD = 's3cret-pass';

async function signedIn(email) {
  const c = client();
  const { data, error } = await c.auth.signInWithPassword({ email, password: PASSWORD });
  assert.equal(error, null);
  return { c, refresh: data.session.refresh_token };
}

test("signOut scopes: 'others' keeps this session, 'global' ends all, 'local' only this one", async () => {
  const email = `scopes-${Date.now()}@example.com`;
  assert.equal((await client().auth.signUp({ email, password: PASSWORD })).error, null);
  const a = await signedIn(email);
  const b = await signedIn(email);
  const c = await signedIn(email);

  assert.equal((await a.c.auth.signOut({ scope: 'others' })).error, null);
  assert.equal((await client().auth.refreshSession({ refresh_token: b.refresh })).error.code, 'refresh_token_not_found');
  const aStill = await a.c.auth.getUser();
  assert.equal(aStill.error, null);

  const d = await signedIn(email);
  const e = await signedIn(email);
  assert.equal((await d.c.auth.signOut({ scope: 'local' })).error, null);
  assert.equal((await client().auth.refreshSession({ refresh_token: d.refresh })).error.code, 'refresh_token_not_found');
  const eRefreshed = await client().auth.refreshSession({ refresh_token: e.refresh });
  assert.equal(eRefreshed.error, null);

  assert.equal((await a.c.auth.signOut({ scope: 'global' })).error, null);
  assert.equal(
    (await client().auth.refreshSession({ refresh_token: eRefreshed.data.session.refresh_token })).error.code,
    'refresh_token_not_found',
  );
  assert.equal((await client().auth.refreshSession({ refresh_token: c.refresh })).error.code, 'refresh_token_not_found');
});

test('signInAnonymously: a session for an anonymous user, amr anonymous', async () => {
  const c = client();
  const { data, error } = await c.auth.signInAnonymously({ options: { data: { theme: 'dark' } } });
  assert.equal(error, null);
  assert.equal(data.user.is_anonymous, true);
  assert.equal(data.user.user_metadata.theme, 'dark');
  const claims = JSON.parse(Buffer.from(data.session.access_token.split('.')[1], 'base64url').toString());
  assert.equal(claims.is_anonymous, true);
  assert.equal(claims.role, 'authenticated');
  assert.deepEqual(claims.amr.map((entry) => entry.method), ['anonymous']);
  const refreshed = await c.auth.refreshSession();
  assert.equal(refreshed.error, null);
  assert.equal(refreshed.data.user.id, data.user.id);
});
