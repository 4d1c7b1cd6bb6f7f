// supabase-js (auth-js) against MadBase's mailing flows of /auth/v1.
//
// Driven by tests/e2e/test_js_clients.py against `madbase serve` with its defaults (autoconfirm
// on, the outbox mailer); MADBASE_OUTBOX names the outbox directory the mails are read from.
// Each flow uses its own address: mails of one kind to one user are limited to one a minute.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from '@supabase/supabase-js';
import { env, options } from './support.mjs';

const url = env('MADBASE_URL');
const outbox = env('MADBASE_OUTBOX');
const client = () => createClient(url, env('MADBASE_ANON_KEY'), options);
const admin = createClient(url, env('MADBASE_SERVICE_ROLE_KEY'), options).auth.admin;
const PASSWORD = 's3cret-pass';

function mailsTo(address) {
  let names = [];
  try {
    names = readdirSync(outbox).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names
    .map((n) => JSON.parse(readFileSync(join(outbox, n), 'utf8')))
    .filter((m) => m.to === address);
}

function lastMail(address) {
  const mails = mailsTo(address);
  assert.ok(mails.length > 0, `no mail to ${address}`);
  return mails[mails.length - 1];
}

const otpOf = (mail) => mail.text.match(/\b(\d{6})\b/)[1];
const linkOf = (mail) => mail.text.match(/(http:\/\/\S+\/verify\?\S+)/)[1];

async function signUp(email) {
  const auth = client().auth;
  const { data, error } = await auth.signUp({ email, password: PASSWORD });
  assert.equal(error, null);
  assert.ok(data.session, 'autoconfirm signs in');
  return auth;
}

test('magic link OTP: signInWithOtp then verifyOtp', async () => {
  const email = 'js-otp@example.com';
  await signUp(email);
  const auth = client().auth;
  const sent = await auth.signInWithOtp({ email, options: { shouldCreateUser: false } });
  assert.equal(sent.error, null);
  const mail = lastMail(email);
  assert.equal(mail.kind, 'magic_link');
  assert.equal(mail.subject, 'Your sign-in link');
  const { data, error } = await auth.verifyOtp({ email, token: otpOf(mail), type: 'email' });
  assert.equal(error, null);
  assert.equal(data.user.email, email);
  assert.ok(data.session.access_token);

  const again = await auth.verifyOtp({ email, token: otpOf(mail), type: 'email' });
  assert.equal(again.error.code, 'otp_expired');
  assert.equal(again.error.status, 403);

  const unknown = await auth.signInWithOtp({
    email: 'js-nobody@example.com',
    options: { shouldCreateUser: false },
  });
  assert.equal(unknown.error.code, 'otp_disabled');
  const tooSoon = await auth.signInWithOtp({ email });
  assert.equal(tooSoon.error.code, 'over_email_send_rate_limit');
  assert.equal(tooSoon.error.status, 429);
});

test('recovery link: GET /verify redirects with the session in the fragment', async () => {
  const email = 'js-recover@example.com';
  await signUp(email);
  const auth = client().auth;
  const { error } = await auth.resetPasswordForEmail(email, {
    redirectTo: 'http://127.0.0.1:5173/reset',
  });
  assert.equal(error, null);
  const mail = lastMail(email);
  assert.equal(mail.kind, 'recovery');
  const link = linkOf(mail);
  assert.ok(link.startsWith(`${url}/auth/v1/verify?token=`), link);
  assert.ok(link.endsWith('&type=recovery&redirect_to=http://127.0.0.1:5173/reset'), link);
  // The link works without an API key, as from a mail client.
  const response = await fetch(link, { redirect: 'manual' });
  assert.equal(response.status, 303);
  const location = response.headers.get('location');
  const [base, fragment] = location.split('#');
  assert.equal(base, 'http://127.0.0.1:5173/reset');
  const params = new URLSearchParams(fragment);
  assert.equal(params.get('type'), 'recovery');
  assert.equal(params.get('token_type'), 'bearer');
  const set = await auth.setSession({
    access_token: params.get('access_token'),
    refresh_token: params.get('refresh_token'),
  });
  assert.equal(set.error, null);
  const updated = await auth.updateUser({ password: 'brand-new-pass' });
  assert.equal(updated.error, null);
  const signedIn = await client().auth.signInWithPassword({ email, password: 'brand-new-pass' });
  assert.equal(signedIn.error, null);

  const reused = await fetch(link, { redirect: 'manual' });
  const error2 = new URLSearchParams(reused.headers.get('location').split('#')[1]);
  assert.equal(error2.get('error_code'), 'otp_expired');
});

test('email change and reauthentication', async () => {
  const email = 'js-change@example.com';
  const auth = await signUp(email);
  const changed = await auth.updateUser({ email: 'js-changed@example.com' });
  assert.equal(changed.error, null);
  assert.equal(changed.data.user.new_email, 'js-changed@example.com');
  assert.equal(lastMail(email).kind, 'email_change');
  const toNew = lastMail('js-changed@example.com');
  // With autoconfirm, one confirmation completes the change.
  const { data, error } = await auth.verifyOtp({
    email: 'js-changed@example.com',
    token: otpOf(toNew),
    type: 'email_change',
  });
  assert.equal(error, null);
  assert.equal(data.user.email, 'js-changed@example.com');

  const reauth = await auth.reauthenticate();
  assert.equal(reauth.error, null);
  const nonceMail = lastMail('js-changed@example.com');
  assert.equal(nonceMail.kind, 'reauthentication');
  assert.equal(nonceMail.subject, `${otpOf(nonceMail)} is your verification code`);
});

test('admin: inviteUserByEmail and generateLink need the service role', async () => {
  const refused = await client().auth.admin.inviteUserByEmail('js-inv@example.com');
  assert.equal(refused.error.code, 'not_admin');
  const invited = await admin.inviteUserByEmail('js-inv@example.com', { data: { team: 'js' } });
  assert.equal(invited.error, null);
  assert.ok(invited.data.user.invited_at);
  assert.equal(lastMail('js-inv@example.com').kind, 'invite');

  const { data, error } = await admin.generateLink({
    type: 'signup',
    email: 'js-gen@example.com',
    password: PASSWORD,
  });
  assert.equal(error, null);
  assert.equal(data.user.email, 'js-gen@example.com');
  assert.equal(data.properties.verification_type, 'signup');
  assert.match(data.properties.email_otp, /^\d{6}$/);
  assert.ok(data.properties.action_link.includes(`token=${data.properties.hashed_token}`));
  const auth = client().auth;
  const verified = await auth.verifyOtp({
    token_hash: data.properties.hashed_token,
    type: 'signup',
  });
  assert.equal(verified.error, null);
  assert.ok(verified.data.user.email_confirmed_at);
});
