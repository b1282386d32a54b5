import { type Logger, redactUrl, silentLogger } from '@stratum/core';
import { Redis } from 'ioredis';
import { BackendOutage } from '../../backend-failure.ts';
import {
  addCounter,
  checkBatch,
  checkKey,
  checkScope,
  checkTtl,
  checkValue,
  DEFAULT_KEYVALUE_LIMITS,
  type KeyPage,
  type KeyValueBackend,
  type KeyValueEntry,
  KeyValueError,
  type KeyValueLimits,
  type KeyValueStore,
  keysQuotaError,
  LIST_PAGE_SIZE,
  parseCounter,
  restorable,
  type StoreScope,
} from '../types.ts';

export interface RedisKeyValueOptions {
  /** `redis://[user:password@]host:port/db` (or `rediss://`). */
  url: string;
  /** Prepended to every key, so that several hosts (or other apps) can share one Redis. */
  keyPrefix?: string;
  limits?: Partial<KeyValueLimits>;
  logger?: Logger;
}

/*
 * Layout per capsule and label, under `<keyPrefix>{<capsule>/<label>}:` (the braces are a
 * cluster hash tag, so one store's keys share a slot and its scripts may touch them all):
 *   `...:v:<key>`  the value, a string with Redis's own TTL
 *   `...:i`        a sorted set of every key (score 0), for byte-ordered paging and the key quota
 * Expired keys leave their index entry behind; listing and the quota check prune them.
 */
const ADMIT = `
local function admit(idx, vkey, vprefix, maxKeys)
  if redis.call('EXISTS', vkey) == 1 then return true end
  if redis.call('ZCARD', idx) < maxKeys then return true end
  for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    if redis.call('EXISTS', vprefix .. m) == 0 then redis.call('ZREM', idx, m) end
  end
  return redis.call('ZCARD', idx) < maxKeys
end
`;

const SCRIPTS = {
  // KEYS: index, value key. ARGV: member, value, ttl ms or '', max keys, value prefix.
  stratumKvSet: `${ADMIT}
if not admit(KEYS[1], KEYS[2], ARGV[5], tonumber(ARGV[4])) then return 'QUOTA' end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) else redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 'OK'`,
  // KEYS: index, value key. ARGV: member, delta, max keys, value prefix. INCRBY keeps the TTL.
  stratumKvIncr: `${ADMIT}
if not admit(KEYS[1], KEYS[2], ARGV[4], tonumber(ARGV[3])) then return {'QUOTA'} end
local result = redis.pcall('INCRBY', KEYS[2], ARGV[2])
if type(result) == 'table' and result.err then return {'ERR', result.err} end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return {'OK', redis.call('GET', KEYS[2])}`,
  // KEYS: index, value key. ARGV: member, '1' when a value is expected, expected, replacement, max keys, value prefix.
  stratumKvCas: `${ADMIT}
local current = redis.call('GET', KEYS[2])
if ARGV[2] == '0' then
  if current then return 'NO' end
elseif (not current) or current ~= ARGV[3] then
  return 'NO'
end
if not admit(KEYS[1], KEYS[2], ARGV[6], tonumber(ARGV[5])) then return 'QUOTA' end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 'OK'`,
  // KEYS: index, value key. ARGV: member.
  stratumKvDel: `redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 'OK'`,
  // KEYS: index. ARGV: value prefix, cursor or '', how many.
  stratumKvList: `local start = '-'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end
local want = tonumber(ARGV[3])
local out = {}
while #out < want do
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, want)
  if #batch == 0 then break end
  for _, m in ipairs(batch) do
    if redis.call('EXISTS', ARGV[1] .. m) == 1 then
      if #out < want then table.insert(out, m) end
    else
      redis.call('ZREM', KEYS[1], m)
    end
    start = '(' .. m
  end
end
return out`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptCall = (...args: (string | Buffer | Uint8Array | number)[]) => Promise<unknown>;

/**
 * Redis: a key prefix per capsule and label; every read-modify-write is one Lua script, so it
 * is atomic however many hosts and workers share the server.
 */
export function redisKeyValue(options: RedisKeyValueOptions): KeyValueBackend {
  const limits = { ...DEFAULT_KEYVALUE_LIMITS, ...options.limits };
  const logger = options.logger ?? silentLogger;
  const client = new Redis(options.url, {
    lazyConnect: true,
    enableAutoPipelining: true,
    // While the server is down a call fails after one reconnect, at most a second away: with two,
    // and ioredis's delays growing to 2 s, an operator saw each failed request take up to 3 s.
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 1000),
    // A server that stops answering (stopped, swapped out, a firewall dropping packets) failed a
    // call only when the capsule's request timed out, 30 s later, naming no backend.
    commandTimeout: ANSWER_TIMEOUT_MS,
    connectTimeout: ANSWER_TIMEOUT_MS,
  });
  // ioredis reports connection errors as events too; without a listener they would be thrown.
  // A first connection that fails rejects with only "Connection is closed.": the event's error
  // (connect ECONNREFUSED 127.0.0.1:6390) is the cause a failed start reports.
  let connectionError: Error | undefined;
  const outage = new BackendOutage(logger, `the redis key-value backend at ${redactUrl(options.url)}`);
  client.on('error', (error: Error) => {
    connectionError = error;
    // Each reconnect that fails says so here: the outage begins, but only calls are counted.
    outage.failed(error, false);
  });
  client.on('ready', () => outage.answered());
  for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { lua });
  let connecting: Promise<void> | undefined;

  // defineCommand adds methods at run time; `<name>Buffer` returns binary replies as Buffers.
  function script(name: ScriptName, binary = false): ScriptCall {
    const method = (client as unknown as Record<string, ScriptCall>)[binary ? `${name}Buffer` : name];
    if (!method) throw new Error(`redis script ${name} was not defined`);
    return method.bind(client);
  }

  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      // A server that stalled and resumed never reconnects, so 'ready' alone never said it was back.
      outage.answered();
      return result;
    } catch (error) {
      throw failure(error, outage);
    }
  }

  return {
    type: 'redis',
    synchronous: false,
    async open(scope: StoreScope) {
      checkScope(scope);
      connecting ??= answeredWithin(
        client.connect().catch((error: unknown) => {
          throw connectionError ? new Error('the connection closed before it was ready', { cause: connectionError }) : error;
        }),
        // Connected, but the ready check's INFO never answered: ioredis would wait for ever.
        () => client.disconnect(),
      );
      await guarded(() => connecting as Promise<void>);
      const prefix = `${options.keyPrefix ?? 'stratum:kv:'}{${scope.capsule}/${scope.label}}:`;
      return openStore(prefix, limits, guarded, script, client);
    },
    async close() {
      // QUIT fails when the server went away meanwhile; the connection is then ended all the same.
      if (client.status === 'ready' || client.status === 'connecting' || client.status === 'connect')
        await client.quit().catch(() => client.disconnect());
      else client.disconnect();
    },
  };
}

/** How long the server has to answer a call, or to become ready once connected. */
const ANSWER_TIMEOUT_MS = 5000;

/** `ready`, or a rejection naming the wait once ANSWER_TIMEOUT_MS have passed (after `giveUp`). */
function answeredWithin(ready: Promise<void>, giveUp: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      giveUp();
      reject(new Error(`the server accepted the connection but did not answer within ${ANSWER_TIMEOUT_MS / 1000} s`));
    }, ANSWER_TIMEOUT_MS);
  });
  return Promise.race([ready, late]).finally(() => clearTimeout(timer));
}

function failure(error: unknown, outage: BackendOutage): KeyValueError {
  if (error instanceof KeyValueError) return error;
  if (error instanceof Error && error.message === 'Command timed out') {
    outage.failed(new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s`));
    // The call was sent: a server that was only stopped runs it when it resumes.
    return new KeyValueError(
      'other',
      `the key-value backend did not answer within ${ANSWER_TIMEOUT_MS / 1000} s; a write may still take effect`,
      { cause: error },
    );
  }
  // Redis's own replies (WRONGTYPE, OOM) name no address; connection errors do, so they stay in the log.
  if (error instanceof Error && error.name === 'ReplyError') return new KeyValueError('other', error.message, { cause: error });
  // ioredis's own words for a call it gave up on name its option, which means nothing to an operator.
  outage.failed(
    error instanceof Error && /maxRetriesPerRequest/.test(error.message) ? new Error('no answer from the server after a reconnect') : error,
  );
  return new KeyValueError('other', 'the key-value backend is unavailable', { cause: error });
}

function openStore(
  prefix: string,
  limits: KeyValueLimits,
  guarded: <T>(work: () => Promise<T>) => Promise<T>,
  script: (name: ScriptName, binary?: boolean) => ScriptCall,
  client: Redis,
): KeyValueStore {
  const index = `${prefix}i`;
  const valuePrefix = `${prefix}v:`;
  const valueKey = (key: string) => valuePrefix + key;

  async function set(key: string, value: Uint8Array, ttlMs: number | undefined): Promise<void> {
    const reply = await script('stratumKvSet')(
      2,
      index,
      valueKey(key),
      key,
      Buffer.from(value),
      ttlMs === undefined ? '' : String(ttlMs),
      limits.maxKeys,
      valuePrefix,
    );
    if (reply === 'QUOTA') throw keysQuotaError(limits);
  }

  async function listKeys(cursor?: string, pageSize = LIST_PAGE_SIZE): Promise<KeyPage> {
    const keys = (await script('stratumKvList')(1, index, valuePrefix, cursor ?? '', pageSize + 1)) as string[];
    const page = keys.slice(0, pageSize);
    const last = page.at(-1);
    return keys.length > pageSize && last !== undefined ? { keys: page, cursor: last } : { keys: page };
  }

  return {
    get: (key) =>
      guarded(async () => {
        checkKey(key, limits);
        const value = await client.getBuffer(valueKey(key));
        return value === null ? undefined : new Uint8Array(value);
      }),
    set: (key, value, ttlMs) =>
      guarded(async () => {
        checkKey(key, limits);
        checkValue(value, limits);
        checkTtl(ttlMs);
        await set(key, value, ttlMs);
      }),
    delete: (key) =>
      guarded(async () => {
        checkKey(key, limits);
        await script('stratumKvDel')(2, index, valueKey(key), key);
      }),
    exists: (key) =>
      guarded(async () => {
        checkKey(key, limits);
        return (await client.exists(valueKey(key))) === 1;
      }),
    listKeys: (cursor, pageSize) => guarded(() => listKeys(cursor, pageSize)),
    increment: (key, delta) =>
      guarded(async () => {
        checkKey(key, limits);
        addCounter(0n, delta);
        const reply = (await script('stratumKvIncr')(
          2,
          index,
          valueKey(key),
          key,
          delta.toString(),
          limits.maxKeys,
          valuePrefix,
        )) as string[];
        if (reply[0] === 'QUOTA') throw keysQuotaError(limits);
        if (reply[0] === 'ERR') throw new KeyValueError('other', (reply[1] ?? 'increment failed').replace(/^ERR /, ''));
        return parseCounter(new TextEncoder().encode(reply[1]));
      }),
    compareAndSwap: (key, expected, replacement) =>
      guarded(async () => {
        checkKey(key, limits);
        checkValue(replacement, limits);
        const reply = await script('stratumKvCas')(
          2,
          index,
          valueKey(key),
          key,
          expected === undefined ? '0' : '1',
          Buffer.from(expected ?? new Uint8Array()),
          Buffer.from(replacement),
          limits.maxKeys,
          valuePrefix,
        );
        if (reply === 'QUOTA') throw keysQuotaError(limits);
        return reply === 'OK';
      }),
    getMany: (keys) =>
      guarded(async () => {
        checkBatch(keys.length);
        for (const key of keys) checkKey(key, limits);
        if (keys.length === 0) return [];
        const values = await client.mgetBuffer(...keys.map(valueKey));
        return values.map((value) => (value === null ? undefined : new Uint8Array(value)));
      }),
    setMany: (entries) =>
      guarded(async () => {
        checkBatch(entries.length);
        for (const [key, value] of entries) {
          checkKey(key, limits);
          checkValue(value, limits);
        }
        for (const [key, value] of entries) await set(key, value, undefined);
      }),
    deleteMany: (keys) =>
      guarded(async () => {
        checkBatch(keys.length);
        for (const key of keys) checkKey(key, limits);
        await Promise.all(keys.map((key) => script('stratumKvDel')(2, index, valueKey(key), key)));
      }),
    usage: () =>
      guarded(async () => {
        let keys = 0;
        let bytes = 0;
        for await (const entry of entries()) {
          keys++;
          bytes += Buffer.byteLength(entry.key) + entry.value.byteLength;
        }
        return { keys, bytes };
      }),
    entries,
    clear: () => guarded(() => clearAll()),
    drop: () => guarded(() => clearAll()),
    restore: (entries) =>
      guarded(async () => {
        // All of a batch at once: ioredis sends them without waiting for each answer (one round
        // trip a key made 5,000 keys take 744 ms), and each set is atomic with its quota check.
        const now = Date.now();
        await Promise.all(
          restorable(entries, limits, now).map((entry) =>
            set(entry.key, entry.value, entry.expiresAt === undefined ? undefined : entry.expiresAt - now),
          ),
        );
      }),
  };

  async function clearAll(): Promise<void> {
    for (;;) {
      const members = await client.zrange(index, 0, 499);
      if (members.length === 0) return;
      await client.del(...members.map(valueKey));
      await client.zrem(index, ...members);
    }
  }

  async function* entries(): AsyncIterable<KeyValueEntry> {
    let cursor: string | undefined;
    do {
      const page = await guarded(() => listKeys(cursor, 200));
      if (page.keys.length > 0) {
        const pipeline = client.pipeline();
        for (const key of page.keys) pipeline.getBuffer(valueKey(key)).pttl(valueKey(key));
        const replies = (await guarded(() => pipeline.exec())) ?? [];
        const now = Date.now();
        for (const [i, key] of page.keys.entries()) {
          const value = replies[i * 2]?.[1] as Buffer | null | undefined;
          const ttl = replies[i * 2 + 1]?.[1] as number | undefined;
          if (!value) continue;
          yield ttl !== undefined && ttl > 0
            ? { key, value: new Uint8Array(value), expiresAt: now + ttl }
            : { key, value: new Uint8Array(value) };
        }
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
  }
}
