import assert from 'node:assert/strict';
import { test } from 'node:test';
import { droppedStoresNotes, servedStores } from './stores.ts';

test('a renamed store label is said to leave its data where it was, not under the new label', () => {
  const before = { 'bucket:attachments': 'local directory (embedded)', 'keyvalue:default': 'SQLite (embedded)' };
  const after = { 'bucket:files': 'local directory (embedded)', 'keyvalue:default': 'SQLite (embedded)' };
  assert.deepEqual(droppedStoresNotes(before, after, 'app/.stratum'), [
    "bucket:attachments is no longer granted: what it stored is kept in app/.stratum, and not served as bucket:files, which is a new store. Grant attachments again in stratum.toml to serve it (a store's data stays under its label: renaming one starts an empty store).",
  ]);
  assert.deepEqual(droppedStoresNotes(after, after, 'app/.stratum'), []);
  // A store bound to a service keeps its data there.
  assert.match(
    droppedStoresNotes({ 'keyvalue:cache': 'redis redis://127.0.0.1:6379/0' }, {}, 'app/.stratum')[0] ?? '',
    /^keyvalue:cache is no longer granted: what it stored is kept in redis redis:\/\/127\.0\.0\.1:6379\/0\. Grant cache again/,
  );
});

test('the stores of a describeBackends list, without its outbound origins', () => {
  assert.deepEqual(
    servedStores([
      { grant: 'sql:main', backend: 'SQLite (embedded)' },
      { grant: 'outbound:https://api.example', backend: 'direct' },
    ]),
    { 'sql:main': 'SQLite (embedded)' },
  );
});
