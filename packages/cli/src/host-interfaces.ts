/**
 * What `stratum-host` serves, as a `_stratum-host` record's `wit=` lists it (spec/discovery.md
 * section 4.1), so that a registrar offers a capsule only to a host that can run it: every
 * interface its capabilities provide, by package where it provides the whole package, at the
 * versions of spec/wit/deps (a version serves the older ones of its track, section 4.1).
 * tests/cli-host-record.test.ts checks it against the capabilities and spec/wit/deps.
 */
export const HOST_INTERFACES: readonly string[] = [
  'wasi:http@0.2.10',
  'wasi:io@0.2.10',
  'wasi:cli@0.2.10',
  // Not wasi:clocks/timezone, which the host does not provide.
  'wasi:clocks/monotonic-clock@0.2.10',
  'wasi:clocks/wall-clock@0.2.10',
  'wasi:random@0.2.10',
  'wasi:filesystem@0.2.10',
  'wasi:sockets@0.2.10',
  'wasi:config@0.2.0-draft',
  'wasi:logging@0.1.0-draft',
  'wasi:keyvalue@0.2.0-draft2',
  'stratum:keyvalue@0.1.0',
  'stratum:sql@0.1.0',
  'stratum:bucket@0.1.0',
  'stratum:crypto@0.1.0',
  'stratum:intl@0.1.0',
];
