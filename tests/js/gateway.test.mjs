// supabase-js against the MadBase gateway: API keys are checked on every service path,
// valid keys reach the services (REST answers 404 PGRST205 for a missing table), CORS preflights are answered.
//
// Driven by tests/e2e/test_js_clients.py, which starts `madbase serve` and passes
// MADBASE_URL, MADBASE_ANON_KEY and MADBASE_SERVICE_ROLE_KEY.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env } from './support.mjs';

const url = env('MADBASE_URL');
const anonKey = env('MADBASE_ANON_KEY');
const serviceRoleKey = env('MADBASE_SERVICE_ROLE_KEY');

// A client that keeps no session, starts no refresh timer, and records each request it makes.
function client(key) {
  const requests = [];
  const recordingFetch = (input, init = {}) => {
    const request = new Request(input, init);
    requests.push({ method: request.method, url: request.url, headers: request.headers });
    return fetch(input, init);
  };
  const supabase = createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { fetch: recordingFetch },
  });
  return { supabase, requests };
}

function assertSentKey(requests, key) {
  assert.equal(requests.length, 1);
  const [request] = requests;
  assert.equal(request.method, 'GET');
  assert.equal(new URL(request.url).pathname, '/rest/v1/no_such_table');
  assert.equal(new URL(request.url).searchParams.get('select'), '*');
  assert.equal(request.headers.get('apikey'), key);
  assert.equal(request.headers.get('authorization'), `Bearer ${key}`);
  assert.match(request.headers.get('x-client-info'), /^supabase-js\/2\.119\.0/);
}

test('anon key passes the gateway and reaches the REST service (404 PGRST205: no such table)', async () => {
  const { supabase, requests } = client(anonKey);
  const { data, error, status } = await supabase.from('no_such_table').select('*');
  assert.equal(status, 404);
  assert.equal(data, null);
  assert.ok(error, 'expected an error object');
  assert.equal(error.code, 'PGRST205');
  assert.equal(typeof error.message, 'string');
  assertSentKey(requests, anonKey);
});

test('tampered key is refused by the gateway (401 PGRST301)', async () => {
  // Change one character in the middle of the signature (not the last one, whose low bits are padding).
  const i = anonKey.lastIndexOf('.') + 10;
  const tampered = anonKey.slice(0, i) + (anonKey[i] === 'A' ? 'B' : 'A') + anonKey.slice(i + 1);
  assert.notEqual(tampered, anonKey);
  const { supabase, requests } = client(tampered);
  const { data, error, status } = await supabase.from('no_such_table').select('*');
  assert.equal(status, 401);
  assert.equal(data, null);
  assert.ok(error, 'expected an error object');
  assert.equal(error.code, 'PGRST301');
  assertSentKey(requests, tampered);
});

test('service_role key passes the gateway too (404 PGRST205)', async () => {
  const { supabase, requests } = client(serviceRoleKey);
  const { error, status } = await supabase.from('no_such_table').select('*');
  assert.equal(status, 404);
  assert.ok(error, 'expected an error object');
  assert.equal(error.code, 'PGRST205');
  assertSentKey(requests, serviceRoleKey);
});

test('CORS preflight for the headers supabase-js sends is allowed', async () => {
  const response = await fetch(`${url}/rest/v1/todos`, {
    method: 'OPTIONS',
    headers: {
      Origin: 'http://localhost:3000',
      'Access-Control-Request-Method': 'GET',
      'Access-Control-Request-Headers': 'apikey,authorization,x-client-info,content-type,prefer',
    },
  });
  await response.arrayBuffer();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('access-control-allow-origin'), '*');

  // A browser would preflight exactly the headers the client sets: collect them from a read and
  // a write (postgrest-js adds accept-profile / content-profile and prefer), then preflight those.
  const { supabase, requests } = client(anonKey);
  await supabase.from('no_such_table').select('*');
  await supabase.from('no_such_table').insert({ title: 'x' }).select();
  const sent = new Set(requests.flatMap((r) => [...r.headers.keys()]));
  for (const name of ['apikey', 'authorization', 'x-client-info', 'accept-profile', 'content-profile', 'prefer']) {
    assert.ok(sent.has(name), `supabase-js no longer sends ${name}: ${[...sent]}`);
  }
  const preflight = await fetch(`${url}/rest/v1/todos`, {
    method: 'OPTIONS',
    headers: {
      Origin: 'http://localhost:3000',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': [...sent].join(','),
    },
  });
  await preflight.arrayBuffer();
  assert.equal(preflight.status, 200);
  assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
  assert.match(preflight.headers.get('access-control-allow-methods'), /\bPOST\b/);
  const allowed = new Set(preflight.headers.get('access-control-allow-headers').split(',').map((h) => h.trim().toLowerCase()));
  for (const name of sent) {
    assert.ok(allowed.has(name), `preflight does not allow ${name}: ${[...allowed]}`);
  }
});
