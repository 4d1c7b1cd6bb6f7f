// supabase-js (auth-js 2.119) against MadBase's /auth/v1: TOTP MFA (enroll, challenge, verify,
// assurance levels, unenroll) and the admin users API (create, list with pagination, update,
// bans, factors, delete).
//
// Driven by tests/e2e/test_js_clients.py, which starts `madbase serve` and passes
// MADBASE_URL, MADBASE_ANON_KEY and MADBASE_SERVICE_ROLE_KEY.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { createClient } from '@supabase/supabase-js';
import { env, options } from './support.mjs';

const url = env('MADBASE_URL');
const anonKey = env('MADBASE_ANON_KEY');
const serviceRoleKey = env('MADBASE_SERVICE_ROLE_KEY');

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret, as an authenticator app computes it.
function totp(secret, unixSeconds = Date.now() / 1000) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of secret.replace(/=+$/, '')) {
    bits += alphabet.indexOf(char).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}

test('TOTP round trip: enroll, challenge, verify to aal2, refresh, unenroll', async () => {
  const supabase = createClient(url, anonKey, options);
  const email = `mfa-${randomUUID()}@example.com`;
  const { error: signUpError } = await supabase.auth.signUp({ email, password: 's3cret-pass' });
  assert.equal(signUpError, null);

  const { data: enrolled, error } = await supabase.auth.mfa.enroll({
    factorType: 'totp',
    friendlyName: 'js authenticator',
  });
  assert.equal(error, null);
  assert.equal(enrolled.type, 'totp');
  assert.equal(enrolled.friendly_name, 'js authenticator');
  assert.match(enrolled.totp.qr_code, /^data:image\/svg\+xml;utf-8,<\?xml/);
  assert.match(enrolled.totp.uri, /^otpauth:\/\/totp\/[^?]+:mfa-.*@example\.com\?algorithm=SHA1&digits=6&issuer=/);
  assert.match(enrolled.totp.secret, /^[A-Z2-7]{32}$/);

  let { data: level } = await supabase.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.deepEqual([level.currentLevel, level.nextLevel], ['aal1', 'aal1']);

  const { data: challenge } = await supabase.auth.mfa.challenge({ factorId: enrolled.id });
  assert.equal(challenge.type, 'totp');
  assert.ok(challenge.expires_at > Date.now() / 1000);
  const wrong = await supabase.auth.mfa.verify({
    factorId: enrolled.id,
    challengeId: challenge.id,
    code: '000000',
  });
  assert.equal(wrong.error.code, 'mfa_verification_failed');
  assert.equal(wrong.error.status, 422);
  const { data: verified, error: verifyError } = await supabase.auth.mfa.verify({
    factorId: enrolled.id,
    challengeId: challenge.id,
    code: totp(enrolled.totp.secret),
  });
  assert.equal(verifyError, null);
  assert.equal(verified.user.factors[0].status, 'verified');

  ({ data: level } = await supabase.auth.mfa.getAuthenticatorAssuranceLevel());
  assert.deepEqual([level.currentLevel, level.nextLevel], ['aal2', 'aal2']);
  assert.deepEqual(
    level.currentAuthenticationMethods.map((m) => m.method).sort(),
    ['password', 'totp'],
  );
  const { data: factors } = await supabase.auth.mfa.listFactors();
  assert.deepEqual(factors.totp.map((f) => f.id), [enrolled.id]);

  const { data: refreshed, error: refreshError } = await supabase.auth.refreshSession();
  assert.equal(refreshError, null);
  ({ data: level } = await supabase.auth.mfa.getAuthenticatorAssuranceLevel(
    refreshed.session.access_token,
  ));
  assert.equal(level.currentLevel, 'aal2');

  // A new sign-in is aal1 and cannot remove the verified factor.
  const other = createClient(url, anonKey, options);
  await other.auth.signInWithPassword({ email, password: 's3cret-pass' });
  const refused = await other.auth.mfa.unenroll({ factorId: enrolled.id });
  assert.equal(refused.error.code, 'insufficient_aal');

  const retry = await supabase.auth.mfa.challengeAndVerify({ factorId: enrolled.id, code: '123' });
  assert.equal(retry.error.code, 'mfa_verification_failed');
  const { data: removed, error: unenrollError } = await supabase.auth.mfa.unenroll({
    factorId: enrolled.id,
  });
  assert.equal(unenrollError, null);
  assert.equal(removed.id, enrolled.id);
});

test('admin users API with the service_role key', async () => {
  const admin = createClient(url, serviceRoleKey, options).auth.admin;
  const emails = [0, 1, 2].map((i) => `admin-${i}-${randomUUID()}@example.com`);
  const created = [];
  for (const email of emails) {
    const { data, error } = await admin.createUser({
      email,
      password: 'made-by-admin',
      email_confirm: true,
      user_metadata: { made: true },
      app_metadata: { plan: 'pro' },
    });
    assert.equal(error, null);
    assert.equal(data.user.email, email);
    assert.equal(data.user.app_metadata.plan, 'pro');
    created.push(data.user);
  }
  const duplicate = await admin.createUser({ email: emails[0] });
  assert.equal(duplicate.error.code, 'email_exists');

  const { data: page, error: listError } = await admin.listUsers({ page: 1, perPage: 2 });
  assert.equal(listError, null);
  assert.equal(page.users.length, 2);
  assert.equal(page.aud, 'authenticated');
  assert.ok(page.total >= 3);
  assert.equal(page.nextPage, 2);
  assert.equal(page.lastPage, Math.ceil(page.total / 2));

  const [first] = created;
  const { data: fetched } = await admin.getUserById(first.id);
  assert.equal(fetched.user.id, first.id);

  const { data: banned } = await admin.updateUserById(first.id, {
    ban_duration: '24h',
    user_metadata: { age: 3 },
  });
  assert.ok(banned.user.banned_until);
  assert.deepEqual(banned.user.user_metadata, { made: true, email_verified: true, age: 3 });
  const user = createClient(url, anonKey, options);
  const blocked = await user.auth.signInWithPassword({ email: emails[0], password: 'made-by-admin' });
  assert.equal(blocked.error.code, 'user_banned');
  const badBan = await admin.updateUserById(first.id, { ban_duration: 'forever' });
  assert.equal(badBan.error.code, 'validation_failed');
  await admin.updateUserById(first.id, { ban_duration: 'none' });
  const signedIn = await user.auth.signInWithPassword({ email: emails[0], password: 'made-by-admin' });
  assert.equal(signedIn.error, null);

  // The user's factor seen and removed through the admin API.
  const { data: enrolled } = await user.auth.mfa.enroll({ factorType: 'totp' });
  const { data: listed } = await admin.mfa.listFactors({ userId: first.id });
  assert.deepEqual(listed.factors.map((f) => f.id), [enrolled.id]);
  const { data: deletedFactor, error: deleteFactorError } = await admin.mfa.deleteFactor({
    userId: first.id,
    id: enrolled.id,
  });
  assert.equal(deleteFactorError, null);
  // auth-js 2.119 hands back its own {data, error} wrapper as `data` here.
  assert.equal(deletedFactor.data.id, enrolled.id);

  const { data: deleted, error: deleteError } = await admin.deleteUser(first.id);
  assert.equal(deleteError, null);
  assert.equal(deleted.user.id, first.id);
  const gone = await admin.getUserById(first.id);
  assert.equal(gone.error.status, 404);
  assert.equal(gone.error.code, 'user_not_found');
  // The deleted user's session no longer works.
  const me = await user.auth.getUser(signedIn.data.session.access_token);
  assert.equal(me.error.code, 'user_not_found');

  const { error: softError } = await admin.deleteUser(created[1].id, true);
  assert.equal(softError, null);
  const { data: soft } = await admin.getUserById(created[1].id);
  assert.ok(soft.user.deleted_at);
  assert.notEqual(soft.user.email, emails[1]);
});

test('admin API refuses the anon key', async () => {
  const anon = createClient(url, anonKey, options).auth.admin;
  const { data, error } = await anon.listUsers();
  assert.deepEqual(data, { users: [] });
  assert.equal(error.status, 403);
  assert.equal(error.code, 'not_admin');
});
