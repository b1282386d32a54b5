import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fieldsText, logLine } from './log-line.ts';

test('a log call takes a category, fields, or both; fields go after the message as JSON, the category stays the source', () => {
  assert.deepEqual(logLine('note created', 'notes'), { category: 'notes', text: 'note created' });
  assert.deepEqual(logLine('paste created', { id: 7, title: 'hi' }), { category: '', text: 'paste created {"id":7,"title":"hi"}' });
  assert.deepEqual(logLine('slow query', 'db', { ms: 120 }), { category: 'db', text: 'slow query {"ms":120}' });
  assert.deepEqual(logLine('plain'), { category: '', text: 'plain' });
  assert.deepEqual(logLine('nothing more', undefined, undefined), { category: '', text: 'nothing more' });
});

test('fields JSON cannot write are written anyway: bigints, Errors, Maps, Sets, cycles; a log call never throws', () => {
  assert.equal(fieldsText({ n: 2n ** 70n }), '{"n":"1180591620717411303424"}');
  assert.equal(fieldsText({ error: new TypeError('bad id') }), '{"error":"TypeError: bad id"}');
  assert.equal(fieldsText({ tags: new Set(['a']), by: new Map([['x', 1]]) }), '{"tags":["a"],"by":{"x":1}}');
  const loop: Record<string, unknown> = { id: 1 };
  loop.self = loop;
  assert.equal(fieldsText(loop), '{"id":1,"self":"[Circular]"}');
  const hostile = {
    toJSON() {
      throw new Error('no');
    },
  };
  assert.match(fieldsText(hostile), /^\[fields not shown: no\]$/);
  assert.equal(logLine(new RangeError('out of range')).text, 'RangeError: out of range');
  assert.equal(logLine('count', 3 as never).text, 'count 3');
});
