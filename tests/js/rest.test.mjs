// supabase-js (postgrest-js) reads against MadBase's /rest/v1, row-level security included.
//
// Driven by tests/e2e/test_js_clients.py, which starts `madbase serve`, creates the schema below
// (countries, cities, todos with an RLS policy on auth.uid()) and passes MADBASE_URL,
// MADBASE_ANON_KEY, MADBASE_SERVICE_ROLE_KEY and MADBASE_USER_TOKEN (a session token of the user
// who owns todos 1 and 2).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env, options } from './support.mjs';

const url = env('MADBASE_URL');
const anon = createClient(url, env('MADBASE_ANON_KEY'), options);
const service = createClient(url, env('MADBASE_SERVICE_ROLE_KEY'), options);
const user = createClient(url, env('MADBASE_ANON_KEY'), {
  ...options,
  global: { headers: { Authorization: `Bearer ${env('MADBASE_USER_TOKEN')}` } },
});

test('filters, order and limit', async () => {
  const { data, error, status } = await anon
    .from('cities')
    .select('id, name')
    .gte('population', 1000000)
    .order('population', { ascending: false })
    .limit(2);
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.deepEqual(data, [
    { id: 20, name: 'Tokyo' },
    { id: 21, name: 'Osaka' },
  ]);
});

test('embedding both ways', async () => {
  const city = await anon.from('cities').select('name, country:countries(code)').eq('id', 10);
  assert.deepEqual(city.data, [{ name: 'Paris', country: { code: 'FR' } }]);
  const countries = await anon
    .from('countries')
    .select('code, cities(name)')
    .order('id')
    .order('id', { referencedTable: 'cities' });
  assert.equal(countries.error, null);
  assert.deepEqual(countries.data, [
    { code: 'FR', cities: [{ name: 'Paris' }, { name: 'Lyon' }] },
    { code: 'JP', cities: [{ name: 'Tokyo' }, { name: 'Osaka' }] },
    { code: 'CL', cities: [] },
  ]);
});

test('exact count with a range, and head requests', async () => {
  const page = await anon.from('cities').select('name', { count: 'exact' }).order('id').range(1, 2);
  assert.equal(page.error, null);
  assert.equal(page.count, 4);
  assert.deepEqual(page.data, [{ name: 'Lyon' }, { name: 'Tokyo' }]);
  const head = await anon.from('countries').select('*', { count: 'exact', head: true });
  assert.equal(head.error, null);
  assert.equal(head.count, 3);
  assert.equal(head.data, null);
});

test('single and maybeSingle', async () => {
  const one = await anon.from('countries').select('name').eq('code', 'CL').single();
  assert.deepEqual(one.data, { name: 'Chile' });
  const none = await anon.from('countries').select('name').eq('code', 'XX').maybeSingle();
  assert.equal(none.error, null);
  assert.equal(none.data, null);
  const many = await anon.from('countries').select('name').single();
  assert.equal(many.status, 406);
  assert.equal(many.error.code, 'PGRST116');
});

test('or, in, ilike and not filters', async () => {
  const result = await anon
    .from('cities')
    .select('name')
    .or('name.ilike.p*,population.lt.1000000')
    .not('country_id', 'in', '(2)')
    .order('id');
  assert.equal(result.error, null);
  assert.deepEqual(result.data, [{ name: 'Paris' }, { name: 'Lyon' }]);
});

test('row-level security: anon, the owner and the service role see different rows', async () => {
  const asAnon = await anon.from('todos').select('id');
  assert.equal(asAnon.error, null);
  assert.deepEqual(asAnon.data, []);
  const asUser = await user.from('todos').select('id, task').order('id');
  assert.equal(asUser.error, null);
  assert.deepEqual(asUser.data, [
    { id: 1, task: 'write tests' },
    { id: 2, task: 'ship' },
  ]);
  const asService = await service.from('todos').select('id').order('id');
  assert.deepEqual(
    asService.data.map((row) => row.id),
    [1, 2, 3],
  );
});

test('errors come back in PostgREST format', async () => {
  const missing = await anon.from('countrys').select('*');
  assert.equal(missing.status, 404);
  assert.equal(missing.error.code, 'PGRST205');
  const column = await anon.from('countries').select('nope');
  assert.equal(column.status, 400);
  assert.equal(column.error.code, '42703');
});
