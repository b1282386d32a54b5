import assert from 'node:assert/strict';
import { test } from 'node:test';
import { preparedStatements } from './sql-statements.ts';

/** A connection that records what crosses to the host, and forgets prepared numbers when told. */
function recordingConnection() {
  const sent: string[] = [];
  const numbers = new Map<number, string>();
  let next = 1;
  const textOf = (number: number) => {
    const text = numbers.get(number);
    if (text === undefined) throw { payload: { tag: 'unknown-statement' } };
    return text;
  };
  const rows = (text: string) => ({ columns: ['text'], rows: [[{ tag: 'text' as const, val: text }]] });
  const outcome = { rowsAffected: 1n };
  return {
    sent,
    forget: () => numbers.clear(),
    connection: {
      query(sql: string) {
        sent.push(`query ${sql}`);
        return rows(sql);
      },
      execute(sql: string) {
        sent.push(`execute ${sql}`);
        return outcome;
      },
      prepare(sql: string) {
        sent.push(`prepare ${sql}`);
        numbers.set(next, sql);
        return next++;
      },
      queryPrepared(number: number) {
        sent.push(`query #${number}`);
        return rows(textOf(number));
      },
      executePrepared(number: number) {
        sent.push(`execute #${number}`);
        textOf(number);
        return outcome;
      },
    },
  };
}

test('a statement goes as text the first time, is prepared on its second use, then goes by number', () => {
  const { sent, connection } = recordingConnection();
  const statements = preparedStatements(connection);
  for (let run = 0; run < 3; run++) assert.deepEqual(statements.query('SELECT 1', []).rows, [[{ tag: 'text', val: 'SELECT 1' }]]);
  statements.execute('CREATE TABLE t (x)', []);
  assert.deepEqual(sent, ['query SELECT 1', 'prepare SELECT 1', 'query #1', 'query #1', 'execute CREATE TABLE t (x)']);
});

test('a number the host forgot: the text this once, a new number on the next use; other errors pass', () => {
  const { sent, connection, forget } = recordingConnection();
  const statements = preparedStatements(connection);
  statements.execute('UPDATE t SET x = 1', []);
  statements.execute('UPDATE t SET x = 1', []);
  forget();
  sent.length = 0;
  assert.equal(statements.execute('UPDATE t SET x = 1', []).rowsAffected, 1n);
  statements.execute('UPDATE t SET x = 1', []);
  assert.deepEqual(sent, ['execute #1', 'execute UPDATE t SET x = 1', 'prepare UPDATE t SET x = 1', 'execute #2']);
  const failing = preparedStatements({
    ...connection,
    query: () => {
      throw { payload: { tag: 'invalid-query', val: 'near "SELEKT"' } };
    },
  });
  assert.throws(
    () => failing.query('SELEKT', []),
    (error: { payload?: { tag: string } }) => error.payload?.tag === 'invalid-query',
  );
});

test('statements seen once are not kept past 256: SQL built around its values never fills the instance', () => {
  const { sent, connection } = recordingConnection();
  const statements = preparedStatements(connection);
  for (let index = 0; index < 1000; index++) statements.query(`SELECT ${index}`, []);
  assert.ok(
    sent.every((line) => line.startsWith('query SELECT')),
    'none prepared',
  );
  // The count starts again past 256 texts: one seen 1,000 statements ago is new again.
  sent.length = 0;
  statements.query('SELECT 0', []);
  assert.deepEqual(sent, ['query SELECT 0']);
});
