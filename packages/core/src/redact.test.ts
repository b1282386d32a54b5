import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactUrl } from './redact.ts';

test('a URL loses its password and secret-looking parameters; other text is left as it is', () => {
  assert.equal(redactUrl('redis://:hunter2@127.0.0.1:6379/0'), 'redis://:***@127.0.0.1:6379/0');
  assert.equal(redactUrl('postgres://me:hunter2@db:5432/x?sslmode=require'), 'postgres://me:***@db:5432/x?sslmode=require');
  assert.equal(
    redactUrl('nats://127.0.0.1:4222/?token=abc&access_key=AK&name=host'),
    'nats://127.0.0.1:4222/?token=***&access_key=***&name=host',
  );
  assert.equal(redactUrl('redis://127.0.0.1:6379/0'), 'redis://127.0.0.1:6379/0');
  assert.equal(redactUrl('/var/lib/stratum/data'), '/var/lib/stratum/data');
});
