// supabase-js (postgrest-js) `.rpc()` against MadBase's /rest/v1/rpc.
//
// Driven by tests/e2e/test_js_clients.py, which starts `madbase serve`, creates the tables of
// tests/e2e/test_rest_clients.py and the functions of tests/e2e/test_rest_rpc_clients.py
// (RPC_SCHEMA), and passes MADBASE_URL, MADBASE_ANON_KEY and MADBASE_USER_TOKEN (a session
// token of the user who owns todos 1 and 2).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env, options } from './support.mjs';

const url = env('MADBASE_URL');

// A client that records the method, URL and Prefer header of each request it makes.
function recording(headers = {}) {
  const requests = [];
  const recordingFetch = (input, init = {}) => {
    const request = new Request(input, init);
    requests.push({ method: request.method, url: new URL(request.url), prefer: request.headers.get('prefer') });
    return fetch(input, init);
  };
  const client = createClient(url, env('MADBASE_ANON_KEY'), {
    ...options,
    global: { fetch: recordingFetch, headers },
  });
  return { client, requests };
}

const { client: anon, requests } = recording();
const user = createClient(url, env('MADBASE_ANON_KEY'), {
  ...options,
  global: { headers: { Authorization: `Bearer ${env('MADBASE_USER_TOKEN')}` } },
});

test('scalar calls by POST, GET and HEAD', async () => {
  const post = await anon.rpc('add_them', { a: 1, b: 2 });
  assert.equal(post.error, null);
  assert.equal(post.status, 200);
  assert.equal(post.data, 3);
  const get = await anon.rpc('greet', { name: 'Ann' }, { get: true });
  assert.equal(get.data, 'Hello Ann!');
  assert.equal(requests.at(-1).method, 'GET');
  assert.equal(requests.at(-1).url.searchParams.get('name'), 'Ann');
  const defaults = await anon.rpc('greet');
  assert.equal(defaults.data, 'Hello guest!');
  const variadic = await anon.rpc('sum_all', { v: [4, 5, 6] });
  assert.equal(variadic.data, 15);
  const json = await anon.rpc('echo', { nested: { list: [1, null, 'x'] } });
  assert.deepEqual(json.data, { nested: { list: [1, null, 'x'] } });
});

test('set-returning functions filter, order, page and count like tables', async () => {
  const result = await anon
    .rpc('cities_in', { code: 'JP' }, { count: 'exact' })
    .select('id, name')
    .gte('population', 1000000)
    .order('name', { ascending: true })
    .range(0, 0);
  assert.equal(result.error, null);
  assert.equal(result.status, 206);
  assert.equal(result.count, 2);
  assert.deepEqual(result.data, [{ id: 21, name: 'Osaka' }]);
  const embedded = await anon
    .rpc('cities_in', { code: 'FR' }, { get: true })
    .select('name, country:countries(code)')
    .eq('id', 11);
  assert.equal(embedded.error, null);
  assert.deepEqual(embedded.data, [{ name: 'Lyon', country: { code: 'FR' } }]);
  const table = await anon.rpc('squares', { n: 4 }).lt('sq', 5).order('x', { ascending: false });
  assert.deepEqual(table.data, [
    { x: 2, sq: 4 },
    { x: 1, sq: 1 },
  ]);
});

test('head calls count without a body', async () => {
  const head = await anon.rpc('cities_in', { code: 'FR' }, { head: true, count: 'exact' });
  assert.equal(head.error, null);
  assert.equal(head.count, 2);
  assert.equal(head.data, null);
  assert.equal(requests.at(-1).method, 'HEAD');
  // An object argument cannot go in a query string: postgrest-js POSTs with return=minimal.
  const objectArg = await anon.rpc('echo', { filter: { a: 1 } }, { head: true, count: 'exact' });
  assert.equal(objectArg.error, null);
  assert.equal(objectArg.count, 1);
  assert.equal(requests.at(-1).method, 'POST');
  assert.equal(requests.at(-1).prefer, 'count=exact,return=minimal');
});

test('single, maybeSingle and composite results', async () => {
  const one = await anon.rpc('cities_in', { code: 'FR' }).select('name').eq('id', 10).single();
  assert.equal(one.error, null);
  assert.deepEqual(one.data, { name: 'Paris' });
  const many = await anon.rpc('cities_in', { code: 'FR' }).single();
  assert.equal(many.status, 406);
  assert.equal(many.error.code, 'PGRST116');
  const none = await anon.rpc('cities_in', { code: 'XX' }).maybeSingle();
  assert.equal(none.error, null);
  assert.equal(none.data, null);
  const biggest = await anon.rpc('biggest_city').select('name');
  assert.deepEqual(biggest.data, { name: 'Tokyo' });
});

test('void functions answer 204', async () => {
  const result = await anon.rpc('touch');
  assert.equal(result.error, null);
  assert.equal(result.status, 204);
  assert.equal(result.data, null);
});

test('errors come back in PostgREST format', async () => {
  const raised = await anon.rpc('fail', { code: 'P0001', msg: 'not today' });
  assert.equal(raised.status, 400);
  assert.deepEqual(raised.error, {
    code: 'P0001',
    message: 'not today',
    details: null,
    hint: 'try again',
  });
  const custom = await anon.rpc('fail', { code: 'PT409', msg: 'taken' });
  assert.equal(custom.status, 409);
  const missing = await anon.rpc('add_them', { a: 1, c: 2 });
  assert.equal(missing.status, 404);
  assert.equal(missing.error.code, 'PGRST202');
  assert.equal(missing.error.hint, 'Perhaps you meant to call the function public.add_them(a, b)');
  const ambiguous = await anon.rpc('amb', { a: 1 });
  assert.equal(ambiguous.status, 300);
  assert.equal(ambiguous.error.code, 'PGRST203');
  const readOnly = await anon.rpc('log_event', { note: 'x' }, { get: true });
  assert.equal(readOnly.status, 405);
  assert.equal(readOnly.error.code, '25006');
});

test('maxAffected and single() undo the call when refused', async () => {
  const notes = ['js-a', 'js-b', 'js-c'];
  const tooMany = await anon.rpc('log_events', { notes }).maxAffected(2);
  assert.equal(tooMany.status, 400);
  assert.equal(tooMany.error.code, 'PGRST124');
  const notOne = await anon.rpc('log_events', { notes }).select('note').single();
  assert.equal(notOne.status, 406);
  assert.equal(notOne.error.code, 'PGRST116');
  const written = await anon.from('rpc_events').select('note').in('note', notes);
  assert.deepEqual(written.data, []);
  const fine = await anon.rpc('log_events', { notes: notes.slice(0, 2) }).select('note').maxAffected(2);
  assert.equal(fine.error, null);
  assert.deepEqual(fine.data, [{ note: 'js-a' }, { note: 'js-b' }]);
  const scalar = await anon.rpc('add_them', { a: 1, b: 1 }).maxAffected(1);
  assert.equal(scalar.error.code, 'PGRST128');
});

test('functions run as the caller, under row-level security', async () => {
  const asAnon = await anon.rpc('my_todos');
  assert.deepEqual(asAnon.data, []);
  const asUser = await user.rpc('my_todos').select('id');
  assert.equal(asUser.error, null);
  assert.deepEqual(asUser.data, [{ id: 1 }, { id: 2 }]);
  const written = await user.rpc('log_event', { note: 'from js' }).select('note');
  assert.deepEqual(written.data, { note: 'from js' });
});

test('schema() sends the profile header', async () => {
  const { client, requests: seen } = recording();
  const result = await client.schema('public').rpc('add_them', { a: 2, b: 2 });
  assert.equal(result.data, 4);
  const other = await client.schema('nope').rpc('add_them', { a: 2, b: 2 });
  assert.equal(other.status, 406);
  assert.equal(other.error.code, 'PGRST106');
  assert.equal(seen.length, 2);
});
