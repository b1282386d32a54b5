import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLoopbackUrl } from './control-connection.ts';

test('only a control API on this machine may say its own name: loopback addresses and localhost, not names that look like them', () => {
  for (const url of [
    'http://127.0.0.1:7070/v1',
    'http://127.8.9.10/v1',
    'http://[::1]:7071/v1',
    'http://localhost:7070/v1',
    'https://LOCALHOST/v1',
  ]) {
    assert.equal(isLoopbackUrl(url), true, url);
  }
  for (const url of [
    'https://h1.example.net/stratum/v1',
    'http://192.0.2.10:7070/v1',
    'http://127.0.0.1.nip.io/v1',
    'http://localhost.example.net/v1',
    'http://[::ffff:192.0.2.1]/v1',
    'not a url',
  ]) {
    assert.equal(isLoopbackUrl(url), false, url);
  }
});
