import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStratumError } from '@stratum/core';
import { parseSqlHostConfig } from './index.ts';

test("a postgres URL's ?user= and ?password= (as libpq takes them) become its userinfo, where the client reads them", () => {
  const settings = parseSqlHostConfig({
    main: { type: 'postgres', url: 'postgres://db.internal:5432/stratum?user=stratum&password=p%40ss&sslmode=require' },
  });
  // Left in the query, postgres.js sent them to the server as settings and logged in without them.
  assert.equal(settings.main?.url, 'postgres://stratum:p%40ss@db.internal:5432/stratum?sslmode=require');
  // A userinfo already given is kept.
  assert.equal(parseSqlHostConfig({ main: { type: 'postgres', url: 'postgres://a:b@db/x?password=c' } }).main?.url, 'postgres://a:b@db/x');
});

test('a password in the query of a URL without a host name (a socket path) is refused, naming the table', () => {
  assert.throws(
    () => parseSqlHostConfig({ main: { type: 'postgres', url: 'postgres://stratum@/x?host=/var/run/postgresql&password=z' } }),
    (error: unknown) => {
      assert.ok(isStratumError(error));
      assert.match(error.details.join('\n'), /\[sql\.main\] url: give the user and password in the URL's userinfo/);
      return true;
    },
  );
});
