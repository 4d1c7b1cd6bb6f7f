// The path users rely on most, through supabase-js (auth-js + postgrest-js) against MadBase:
// sign up -> sign in -> /rest/v1 sees auth.uid() under RLS -> refresh -> sign out -> the old
// refresh token is refused.
//
// Driven by tests/e2e/test_js_clients.py (schema: public.diary, owner defaults to auth.uid(),
// one policy `owner = auth.uid()` for authenticated, reads and writes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env, options } from './support.mjs';

const url = env('MADBASE_URL');

test('sign-up, RLS by auth.uid(), refresh, sign-out, old refresh token refused', async () => {
  const client = createClient(url, env('MADBASE_ANON_KEY'), options);
  const service = createClient(url, env('MADBASE_SERVICE_ROLE_KEY'), options);
  const email = `js-${Date.now()}@example.com`;

  const signedUp = await client.auth.signUp({ email, password: 's3cret-pass' });
  assert.equal(signedUp.error, null);
  assert.ok(signedUp.data.session, 'autoconfirm: sign-up returns a session');
  const userId = signedUp.data.user.id;
  assert.equal(signedUp.data.user.email, email);
  assert.equal(signedUp.data.session.user.id, userId);

  await client.auth.signOut();
  const signedIn = await client.auth.signInWithPassword({ email, password: 's3cret-pass' });
  assert.equal(signedIn.error, null);
  assert.equal(signedIn.data.user.id, userId);
  assert.equal(signedIn.data.session.token_type, 'bearer');

  const claims = JSON.parse(
    Buffer.from(signedIn.data.session.access_token.split('.')[1], 'base64url').toString(),
  );
  assert.equal(claims.sub, userId);
  assert.equal(claims.role, 'authenticated');
  assert.equal(claims.aal, 'aal1');
  assert.deepEqual(claims.amr.map((entry) => entry.method), ['password']);

  // Someone else's entry, written with the service key (RLS bypassed).
  const other = await service
    .from('diary')
    .insert({ owner: '00000000-0000-4000-8000-000000000001', entry: 'not yours' });
  assert.equal(other.error, null);

  // The signed-in client's token reaches PostgREST: auth.uid() fills the owner and RLS shows
  // the user their own rows only.
  const written = await client.from('diary').insert({ entry: 'mine' }).select('owner, entry');
  assert.equal(written.error, null);
  assert.deepEqual(written.data, [{ owner: userId, entry: 'mine' }]);
  const forged = await client.from('diary').insert({ owner: '00000000-0000-4000-8000-000000000001', entry: 'x' });
  assert.equal(forged.error.code, '42501');
  assert.equal(forged.status, 403);
  const mine = await client.from('diary').select('entry');
  assert.deepEqual(mine.data, [{ entry: 'mine' }]);
  // Anonymous requests see nothing (the policy is for authenticated only).
  const anon = createClient(url, env('MADBASE_ANON_KEY'), options);
  assert.deepEqual((await anon.from('diary').select('id')).data, []);

  const oldRefresh = signedIn.data.session.refresh_token;
  const refreshed = await client.auth.refreshSession();
  assert.equal(refreshed.error, null);
  assert.notEqual(refreshed.data.session.refresh_token, oldRefresh);
  assert.equal(refreshed.data.user.id, userId);
  assert.deepEqual((await client.from('diary').select('entry')).data, [{ entry: 'mine' }]);

  const current = refreshed.data.session.refresh_token;
  const out = await client.auth.signOut();
  assert.equal(out.error, null);
  assert.equal((await client.auth.getSession()).data.session, null);

  const reused = await anon.auth.refreshSession({ refresh_token: current });
  assert.ok(reused.error, 'a signed-out session cannot be refreshed');
  assert.equal(reused.error.status, 400);
  assert.equal(reused.error.code, 'refresh_token_not_found');

  const wrong = await anon.auth.signInWithPassword({ email, password: 'not-the-password' });
  assert.equal(wrong.error.code, 'invalid_credentials');
  assert.equal(wrong.error.status, 400);
  const unknown = await anon.auth.signInWithPassword({
    email: `nobody-${Date.now()}@example.com`,
    password: 'not-the-password',
  });
  assert.equal(unknown.error.code, 'invalid_credentials');
  assert.equal(unknown.error.message, wrong.error.message);
});
