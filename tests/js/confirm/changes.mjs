// supabase-js changing a user's phone number and (in the PKCE flow) email address, against
// `madbase serve` started with MADBASE_AUTH_AUTOCONFIRM=false and MADBASE_AUTH_PHONE=true.
//
// Run by tests/e2e/test_js_clients.py against that server (see confirm/signup.mjs); texts and
// mails are read from the outbox directory MADBASE_OUTBOX.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env, lastSent, options } from '../support.mjs';

const url = env('MADBASE_URL');
const outbox = env('MADBASE_OUTBOX');
const APP = 'http://127.0.0.1:3000/changed';

const last = (to) => lastSent(outbox, to);

const code = (to) => last(to).text.match(/\b(\d{6})\b/)[1];

test('updateUser({ phone }) texts the new number; verifyOtp type phone_change makes it the number', async () => {
  const auth = createClient(url, env('MADBASE_ANON_KEY'), options).auth;
  assert.equal((await auth.signInWithOtp({ phone: '+15550133' })).error, null);
  const signedIn = await auth.verifyOtp({ phone: '+15550133', token: code('15550133'), type: 'sms' });
  assert.equal(signedIn.error, null);
  assert.equal(signedIn.data.user.phone, '15550133');

  const pending = await auth.updateUser({ phone: '+15550144' });
  assert.equal(pending.error, null);
  assert.equal(pending.data.user.phone, '15550133');
  assert.equal(pending.data.user.new_phone, '15550144');
  assert.equal(last('15550144').kind, 'phone_change');

  const wrongNumber = await auth.verifyOtp({
    phone: '+15550133',
    token: code('15550144'),
    type: 'phone_change',
  });
  assert.equal(wrongNumber.error.code, 'otp_expired');
  const changed = await auth.verifyOtp({
    phone: '+15550144',
    token: code('15550144'),
    type: 'phone_change',
  });
  assert.equal(changed.error, null);
  assert.equal(changed.data.user.phone, '15550144');
  const { data: me } = await auth.getUser();
  assert.equal(me.user.phone, '15550144');
  assert.equal(me.user.new_phone, undefined);
});

test('updateUser({ email }) in the PKCE flow: both links, the last ends in a code for the new address', async () => {
  const auth = createClient(url, env('MADBASE_ANON_KEY'), {
    auth: { ...options.auth, flowType: 'pkce' },
  }).auth;
  const email = 'js-change@example.com';
  assert.equal((await auth.signUp({ email, password: 's3cret-pass' })).error, null);
  const confirmed = await auth.verifyOtp({ email, token: code(email), type: 'signup' });
  assert.equal(confirmed.error, null);

  const pending = await auth.updateUser({ email: 'js-moved@example.com' }, { emailRedirectTo: APP });
  assert.equal(pending.error, null);
  assert.equal(pending.data.user.new_email, 'js-moved@example.com');

  const open = async (to) => {
    const link = last(to).text.match(/(http:\/\/\S+\/verify\?\S+)/)[1];
    assert.ok(new URL(link).searchParams.get('token').startsWith('pkce_'), link);
    const response = await fetch(link, { redirect: 'manual' });
    assert.equal(response.status, 303);
    return new URL(response.headers.get('location'));
  };
  const half = await open(email); // the current address: only says the other link is pending
  assert.equal(half.searchParams.get('code'), null);
  assert.ok(half.hash.includes('message='), half.href);
  const done = await open('js-moved@example.com');
  assert.equal(done.origin + done.pathname, APP);
  const { data, error } = await auth.exchangeCodeForSession(done.searchParams.get('code'));
  assert.equal(error, null);
  assert.equal(data.user.email, 'js-moved@example.com');
});
