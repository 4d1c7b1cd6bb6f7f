// supabase-js (postgrest-js) writes against MadBase's /rest/v1: upsert statuses, missing=default,
// maxAffected and single() that must roll back, CSV output.
//
// Driven by tests/e2e/test_js_clients.py (see rest.test.mjs); writes only public.js_items,
// js_ledger and js_feedback, which no other test file touches (node runs test files concurrently).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { env, options } from './support.mjs';

const db = createClient(env('MADBASE_URL'), env('MADBASE_SERVICE_ROLE_KEY'), options);
const anon = createClient(env('MADBASE_URL'), env('MADBASE_ANON_KEY'), options);
const user = createClient(env('MADBASE_URL'), env('MADBASE_ANON_KEY'), {
  ...options,
  global: { headers: { Authorization: `Bearer ${env('MADBASE_USER_TOKEN')}` } },
});

async function snapshot() {
  const { data, error } = await db.from('js_items').select('id, name, qty').order('id');
  assert.equal(error, null);
  return data;
}

test('writes: insert with defaultToNull:false, upsert statuses, maxAffected and single roll back', async () => {
  // bulk insert: the client sends columns=; missing keys take the column default
  const inserted = await db
    .from('js_items')
    .insert([{ id: 10, name: 'a', qty: 1 }, { id: 11, name: 'b' }], { defaultToNull: false })
    .select('id, qty');
  assert.equal(inserted.error, null);
  assert.equal(inserted.status, 201);
  assert.deepEqual(inserted.data, [{ id: 10, qty: 1 }, { id: 11, qty: 5 }]);

  // upsert that only updates: 200; one that inserts: 201
  const updated = await db.from('js_items').upsert({ id: 10, name: 'a2', qty: 2 });
  assert.equal(updated.error, null);
  assert.equal(updated.status, 200);
  const created = await db.from('js_items').upsert([{ id: 10, name: 'a3', qty: 3 }, { id: 12, name: 'c', qty: 4 }]);
  assert.equal(created.error, null);
  assert.equal(created.status, 201);

  const before = await snapshot();
  // maxAffected: more rows than allowed -> PGRST124, nothing written
  const tooMany = await db.from('js_items').update({ note: 'x' }).gte('id', 10).maxAffected(2);
  assert.equal(tooMany.status, 400);
  assert.equal(tooMany.error.code, 'PGRST124');
  assert.equal(tooMany.error.details, 'The query affects 3 rows');
  const removed = await db.from('js_items').delete().gte('id', 10).maxAffected(1).select();
  assert.equal(removed.error.code, 'PGRST124');
  assert.deepEqual(await snapshot(), before);
  // within the limit it goes through
  const one = await db.from('js_items').delete().eq('id', 12).maxAffected(1).select('id');
  assert.equal(one.error, null);
  assert.deepEqual(one.data, [{ id: 12 }]);

  // single() on an update of two rows: 406 PGRST116 and rolled back
  const single = await db.from('js_items').update({ qty: 0 }).in('id', [10, 11]).select().single();
  assert.equal(single.status, 406);
  assert.equal(single.error.code, 'PGRST116');
  assert.equal(single.error.details, 'The result contains 2 rows');
  const after = await db.from('js_items').select('qty').in('id', [10, 11]).order('id');
  assert.deepEqual(after.data, [{ qty: 3 }, { qty: 5 }]);
  const exactlyOne = await db.from('js_items').update({ qty: 9 }).eq('id', 11).select('id, qty').single();
  assert.equal(exactlyOne.error, null);
  assert.deepEqual(exactlyOne.data, { id: 11, qty: 9 });
});

test('writes that do not read back: an insert-only table (RLS) and column grants', async () => {
  // .insert() without .select() sends return=minimal: the row is written, never read
  const sent = await anon.from('js_feedback').insert({ message: 'hi' });
  assert.equal(sent.error, null);
  assert.equal(sent.status, 201);
  // reading it back is what the missing select policy refuses
  const readBack = await anon.from('js_feedback').insert({ message: 'hi' }).select();
  assert.equal(readBack.status, 401);
  assert.equal(readBack.error.code, '42501');

  // column grants, no table grant: write, and read back only granted columns
  const added = await user.from('js_ledger').insert({ amount: 5 });
  assert.equal(added.error, null);
  assert.equal(added.status, 201);
  const back = await user.from('js_ledger').insert({ amount: 6 }).select('id, amount');
  assert.equal(back.error, null);
  assert.deepEqual(back.data, [{ id: 2, amount: 6 }]);
  const everything = await user.from('js_ledger').insert({ amount: 7 }).select();
  assert.equal(everything.status, 403);
  assert.equal(everything.error.code, '42501');
  const changed = await user.from('js_ledger').update({ amount: 8 }).eq('id', 1);
  assert.equal(changed.error, null);
  assert.equal(changed.status, 204);
  const one = await user.from('js_ledger').update({ amount: 9 }).eq('id', 2).select('amount').single();
  assert.equal(one.error, null);
  assert.deepEqual(one.data, { amount: 9 });
  const removed = await user.from('js_ledger').delete().eq('id', 1);
  assert.equal(removed.error, null);
  assert.equal(removed.status, 204);
  // upserts: only an update is 200, an insert 201
  const merged = await user.from('js_ledger').upsert({ id: 2, amount: 10 });
  assert.equal(merged.error, null);
  assert.equal(merged.status, 200);
  const upserted = await user
    .from('js_ledger')
    .upsert([{ id: 2, amount: 11 }, { id: 10, amount: 1 }])
    .select('id, amount');
  assert.equal(upserted.error, null);
  assert.equal(upserted.status, 201);
  assert.deepEqual(upserted.data, [{ id: 2, amount: 11 }, { id: 10, amount: 1 }]);
  const ignored = await user.from('js_ledger').upsert({ id: 10, amount: 0 }, { ignoreDuplicates: true });
  assert.equal(ignored.error, null);
  assert.equal(ignored.status, 201);
  const rows = await user.from('js_ledger').select('id, amount').order('id');
  assert.deepEqual(rows.data, [{ id: 2, amount: 11 }, { id: 10, amount: 1 }]);
});

test('csv output of a read', async () => {
  const { data, error } = await db.from('js_items').select('id, name').lte('id', 2).order('id').csv();
  assert.equal(error, null);
  assert.equal(data, 'id,name\n1,bolt\n2,nut');
});

test('getOpenApiSpec: the Swagger 2.0 root document', async () => {
  const { data, error, status } = await db.getOpenApiSpec();
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.equal(data.swagger, '2.0');
  assert.ok(data.paths['/js_items'].get);
  assert.ok(data.paths['/js_items'].post);
  assert.deepEqual(data.definitions.js_items.required, ['id', 'name', 'qty']);
  assert.deepEqual(data.definitions.js_items.properties.qty, { default: 5, format: 'int32', type: 'integer' });
  const missing = await db.schema('nope').getOpenApiSpec();
  assert.equal(missing.status, 406);
  assert.equal(missing.error.code, 'PGRST106');
});

test('planned counts; explain() is refused while db-plan-enabled is off', async () => {
  const planned = await db.from('js_items').select('id', { count: 'planned', head: true });
  assert.equal(planned.error, null);
  assert.equal(typeof planned.count, 'number');
  const explained = await db.from('js_items').select('id').explain();
  assert.equal(explained.status, 406);
  assert.equal(explained.error.code, 'PGRST107');
});
