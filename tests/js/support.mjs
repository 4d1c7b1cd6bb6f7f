// What every supabase-js test file here needs: the server's settings from the environment
// (tests/e2e/test_js_clients.py sets them) and client options without session persistence.

import assert from 'node:assert/strict';

export function env(name) {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run through tests/e2e/test_js_clients.py)`);
  return value;
}

export const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
};
