// What every supabase-js test file here needs: the server's settings from the environment
// (tests/e2e/test_js_clients.py sets them) and client options without session persistence.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function env(name) {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run through tests/e2e/test_js_clients.py)`);
  return value;
}

export const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
};

// The last mail or text the outbox mailer wrote to `to` (an address or a phone number).
export function lastSent(outbox, to) {
  const sent = readdirSync(outbox)
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => JSON.parse(readFileSync(join(outbox, n), 'utf8')))
    .filter((m) => m.to === to);
  assert.ok(sent.length > 0, `nothing sent to ${to}`);
  return sent[sent.length - 1];
}
