import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseBucketHostConfig } from '../capabilities/bucket/index.ts';
import { parseKeyValueHostConfig } from '../capabilities/keyvalue/index.ts';
import { parseSqlHostConfig } from '../capabilities/sql/index.ts';
import { HostConfigError, parseHostConfig } from './parse.ts';
import { hostConfigTemplate } from './template.ts';

const examples = new URL('../../../../spec/host-config/examples/', import.meta.url);
const read = (name: string) => readFileSync(new URL(name, examples), 'utf8');

test("host init's template reads back as written, the defaults spelt out and the operator trusted", () => {
  const operator = { publicKey: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', keyFile: 'operator-key.json' };
  const plain = parseHostConfig(hostConfigTemplate({ name: 'h1.example.net', keyFile: 'host-key.json', operator }), 'host.toml', '/srv/h1');
  assert.equal(plain.name, 'h1.example.net');
  assert.equal(plain.keyFile, '/srv/h1/host-key.json');
  assert.equal(plain.dataDir, '/srv/h1/data');
  assert.deepEqual(plain.ingress.listen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(plain.control.listen, { host: '127.0.0.1', port: 7070 });
  assert.deepEqual(
    plain.registrars.map((registrar) => [registrar.name, registrar.key.x, registrar.domain, registrar.operator]),
    [['operator', operator.publicKey, undefined, true]],
  );
  // The "small" resource class's: a manifest asking for "large" is refused at install.
  assert.deepEqual(plain.limits, { memoryBytes: 256 * 1024 * 1024, cpuMsPerRequest: 200, timeoutMs: 30_000, concurrency: 32 });
  const chosen = parseHostConfig(
    hostConfigTemplate({
      name: 'h2.example.net',
      keyFile: 'host-key.json',
      operator: { ...operator, domain: 'example.net' },
      ingress: '[::]:80',
      control: '127.0.0.1:0',
    }),
  );
  assert.deepEqual(chosen.ingress.listen, { host: '::', port: 80 });
  assert.deepEqual(chosen.control.listen, { host: '127.0.0.1', port: 0 });
  assert.equal(chosen.registrars[0]?.domain, 'example.net');
});

test('the minimal example gets the defaults', () => {
  const config = parseHostConfig(read('valid/minimal.toml'), 'minimal.toml', '/etc/stratum');
  assert.equal(config.name, 'host1.example.net');
  assert.equal(config.keyFile, '/etc/stratum/host.key');
  assert.equal(config.dataDir, '/etc/stratum/data');
  assert.deepEqual(config.ingress.listen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(config.control.listen, { host: '127.0.0.1', port: 7070 });
  assert.deepEqual(config.ingress.trustedProxies, []);
  assert.equal(config.control.tls, undefined);
  assert.equal(config.control.maxBodyBytes, 64 * 1024 * 1024);
  assert.deepEqual(config.limits, {});
  assert.equal(config.metering.flushIntervalMs, 10_000);
  // Domain links are checked unless the operator says otherwise, through the system's resolvers.
  assert.deepEqual(config.discovery, { verifyLinks: true, recheckMs: 300_000 });
  assert.equal(config.registrars.length, 1);
  assert.equal(config.registrars[0]?.domain, undefined);
  // Not marked as the operator's: it drives only the installations it makes.
  assert.equal(config.registrars[0]?.operator, undefined);
  assert.equal(config.registrars[0]?.key.kid, 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
  assert.deepEqual(config.capabilities, { keyvalue: {}, sql: {}, bucket: {} });
  assert.equal('outbound' in config.capabilities, false);
});

test('the full example converts units and passes backend tables through', () => {
  const config = parseHostConfig(read('valid/full.toml'), 'full.toml', '/ignored');
  assert.equal(config.keyFile, '/etc/stratum/host.key');
  assert.deepEqual(config.control.listen, { host: '::', port: 7443 });
  assert.deepEqual(config.ingress.trustedProxies, ['127.0.0.1/32', '::1/128', '10.8.0.0/24']);
  assert.equal(config.ingress.maxConnections, 60_000);
  assert.equal(config.ingress.maxConnectionsPerClient, 256);
  assert.deepEqual(config.control.tls, { certFile: '/etc/stratum/tls/cert.pem', keyFile: '/etc/stratum/tls/key.pem' });
  assert.equal(config.control.maxBodyBytes, 32 * 1024 * 1024);
  assert.deepEqual(config.limits, {
    memoryBytes: 256 * 1024 * 1024,
    cpuMsPerRequest: 200,
    timeoutMs: 30_000,
    concurrency: 32,
    queue: 64,
    requestBodyBytes: 10_000_000,
    responseBodyBytes: 50_000_000,
    outboundRequests: 16,
    idleMs: 600_000,
  });
  assert.deepEqual(config.instances, { max: 400, waitingPerCapsule: 16 });
  assert.equal(config.metering.flushIntervalMs, 30_000);
  assert.deepEqual(
    config.registrars.map((registrar) => [registrar.name, registrar.operator]),
    [
      ['operator', true],
      ['example', undefined],
    ],
  );
  assert.equal(config.registrars[1]?.description, 'Example Registrar Inc.');
  assert.equal(config.registrars[1]?.domain, 'registrar.example.com');
  assert.deepEqual(config.discovery, { verifyLinks: true, resolver: '127.0.0.1:53', recheckMs: 60_000 });
  assert.deepEqual(config.capabilities.keyvalue.default, { type: 'redis', url: 'redis://127.0.0.1:6379/0' });
  assert.deepEqual(config.capabilities.keyvalue.cache, { type: 'nats', url: 'nats://127.0.0.1:4222' });
  assert.equal(config.capabilities.sql.default?.type, 'postgres');
  assert.deepEqual(config.capabilities.outbound, { allow_addresses: ['10.1.0.0/16'], max_response_size: '16mb', timeout: '30s' });
  assert.deepEqual(config.capabilities.bucket.default, {
    type: 's3',
    location: 's3://capsules/stratum',
    endpoint: 'https://s3.example.net',
    region: 'eu-west-1',
  });
});

// The schema checks only each backend table's `type`; the capabilities check the rest when the
// host starts. An example an operator copies must pass both (full.toml's S3 table did not).
for (const name of readdirSync(new URL('valid/', examples)).filter((file) => file.endsWith('.toml'))) {
  test(`valid example ${name}'s backend tables are what the capabilities accept`, () => {
    const { capabilities } = parseHostConfig(read(`valid/${name}`), name, '/etc/stratum');
    assert.doesNotThrow(() => parseKeyValueHostConfig(capabilities.keyvalue));
    assert.doesNotThrow(() => parseSqlHostConfig(capabilities.sql));
    assert.doesNotThrow(() => parseBucketHostConfig(capabilities.bucket));
  });
}

for (const name of readdirSync(new URL('invalid/', examples)).filter((file) => file.endsWith('.toml'))) {
  test(`invalid example ${name} gives the expected errors`, () => {
    const expected = read(`invalid/${name.replace(/\.toml$/, '.err')}`);
    assert.throws(
      () => parseHostConfig(read(`invalid/${name}`), name, '/base'),
      (error: unknown) => {
        assert.ok(error instanceof HostConfigError);
        assert.equal(`${error.details.join('\n')}\n`, expected);
        return true;
      },
    );
  });
}

test('every problem is reported, in file order', () => {
  const text = `stratum = 1
[host]
name = "h.example"
key = "k"
data = "d"
colour = "blue"
[registrars.r]
key = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
[limits]
concurrency = 0
timeout = 30
`;
  assert.throws(
    () => parseHostConfig(text, 'host.toml', '/'),
    (error: unknown) => {
      assert.ok(error instanceof HostConfigError);
      assert.deepEqual(error.details, [
        'host.toml:6:1: unknown key "colour" in [host] (known: name, key, data)',
        'host.toml:10:1: limits.concurrency must be at least 1, not 0',
        'host.toml:11:1: limits.timeout must be a string, not an integer; write it with its unit, such as timeout = "30s"',
      ]);
      return true;
    },
  );
});

test('a TOML syntax error points at its line', () => {
  assert.throws(
    () => parseHostConfig('stratum = 1\nname = = 2\n', 'host.toml', '/'),
    (error: unknown) => {
      assert.ok(error instanceof HostConfigError);
      assert.match(error.details[0] ?? '', /^host\.toml:2:\d+: invalid TOML/);
      return true;
    },
  );
});

test('arbitrary text never throws anything but a HostConfigError', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (text) => {
      try {
        parseHostConfig(text, 'fuzz.toml', '/');
      } catch (error) {
        assert.ok(error instanceof HostConfigError, String(error));
      }
    }),
    { numRuns: 300 },
  );
});

test('arbitrary values in a valid frame never throw anything but a HostConfigError', () => {
  const value = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean(), fc.constant('[]'));
  fc.assert(
    fc.property(fc.constantFrom('memory', 'cpu', 'concurrency', 'request_body', 'memroy'), value, (key, item) => {
      const rendered = typeof item === 'string' && item !== '[]' ? JSON.stringify(item) : String(item);
      const text = `${read('valid/minimal.toml')}\n[limits]\n${key} = ${rendered}\n`;
      try {
        parseHostConfig(text, 'fuzz.toml', '/');
      } catch (error) {
        assert.ok(error instanceof HostConfigError, String(error));
      }
    }),
    { numRuns: 300 },
  );
});

test('a partial host.toml, for stratum dev, may leave out the tables only a running host needs', () => {
  const text = '[limits]\nrequest_body = "64mib"\n';
  assert.throws(() => parseHostConfig(text, '/tmp/dev/host.toml'), /\[registrars\]|registrars|host/);
  const config = parseHostConfig(text, '/tmp/dev/host.toml', '/tmp/dev', { partial: true });
  assert.equal(config.limits.requestBodyBytes, 64 * 1024 * 1024);
  // What it does give is checked as ever.
  assert.throws(
    () => parseHostConfig('[limits]\nrequest_bdy = "64mib"\n', '/tmp/dev/host.toml', '/tmp/dev', { partial: true }),
    /request_bdy/,
  );
});

test('problems of every kind are reported at once: a value the schema refuses and one only the host checks, in one run', () => {
  const text = `${read('valid/minimal.toml')}\n[instances]\nmax = 0\n[metering]\nflush_interval = "0s"\n[limits]\nconcurency = 3\ncpu = "0ms"\n`;
  const error = (() => {
    try {
      parseHostConfig(text, '/etc/stratum/host.toml');
    } catch (caught) {
      return caught;
    }
    assert.fail('a host.toml with errors was taken');
  })();
  assert.ok(error instanceof HostConfigError, String(error));
  assert.deepEqual(
    error.problems.map((problem) => problem.path),
    ['instances.max', 'metering.flush_interval', 'limits.concurency', 'limits.cpu'],
  );
});
