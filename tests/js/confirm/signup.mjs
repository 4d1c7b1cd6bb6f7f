// supabase-js sign-up against `madbase serve` started with MADBASE_AUTH_AUTOCONFIRM=false.
//
// Not picked up by node's default test discovery (no `.test.` in the name): the shared server
// of tests/e2e/test_js_clients.py autoconfirms. test_js_clients.py runs this file against its
// own server, with MADBASE_OUTBOX naming the outbox directory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env, lastSent, options } from '../support.mjs';

const url = env('MADBASE_URL');
const outbox = env('MADBASE_OUTBOX');
const client = () => createClient(url, env('MADBASE_ANON_KEY'), options);

const lastMail = (address) => lastSent(outbox, address);

test('signUp without autoconfirm: no session, a confirmation mail, email_not_confirmed', async () => {
  const auth = client().auth;
  const settings = await fetch(`${url}/auth/v1/settings`).then((r) => r.json());
  assert.equal(settings.mailer_autoconfirm, false);
  const email = 'js-confirm@example.com';
  const { data, error } = await auth.signUp({ email, password: 's3cret-pass' });
  assert.equal(error, null);
  assert.equal(data.session, null);
  assert.equal(data.user.email, email);
  assert.ok(data.user.confirmation_sent_at);
  const mail = lastMail(email);
  assert.equal(mail.kind, 'confirmation');
  const early = await auth.signInWithPassword({ email, password: 's3cret-pass' });
  assert.equal(early.error.code, 'email_not_confirmed');

  // The confirmation link, followed as a browser would: a session in the fragment.
  const link = mail.text.match(/(http:\/\/\S+\/verify\?\S+)/)[1];
  assert.ok(link.includes('&type=signup&'), link);
  const response = await fetch(link, { redirect: 'manual' });
  assert.equal(response.status, 303);
  const [base, fragment] = response.headers.get('location').split('#');
  assert.equal(base, url);
  const params = new URLSearchParams(fragment);
  assert.equal(params.get('type'), 'signup');
  const { data: me } = await auth.getUser(params.get('access_token'));
  assert.ok(me.user.email_confirmed_at);

  const later = await auth.signInWithPassword({ email, password: 's3cret-pass' });
  assert.equal(later.error, null);
});

test('verifyOtp with the mailed code, and resend within the interval', async () => {
  const auth = client().auth;
  const email = 'js-code@example.com';
  await auth.signUp({ email, password: 's3cret-pass' });
  const again = await auth.resend({ type: 'signup', email });
  assert.equal(again.error.code, 'over_email_send_rate_limit');
  const code = lastMail(email).text.match(/\b(\d{6})\b/)[1];
  const { data, error } = await auth.verifyOtp({ email, token: code, type: 'signup' });
  assert.equal(error, null);
  assert.ok(data.session.access_token);
  assert.equal(data.user.user_metadata.email_verified, true);
});
