import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { type Logger, redactUrl, silentLogger } from '@stratum/core';
import postgres from 'postgres';
import { BackendOutage } from '../../backend-failure.ts';
import { type PostgresStatement, toPostgres } from '../dialect.ts';
import { CHANGES_ROWS, checkParamCount, countParams, singleStatement } from '../lexer.ts';
import {
  checkParamLimit,
  checkScope,
  checkStatementSize,
  type DatabaseScope,
  DEFAULT_SQL_LIMITS,
  databaseFull,
  resultMeter,
  type SqlBackend,
  type SqlDatabase,
  SqlError,
  type SqlHostIdentity,
  type SqlImport,
  type SqlLimits,
  type SqlOutcome,
  type SqlRows,
  type SqlStatement,
  type SqlValue,
  type TableDump,
  tooManyRows,
} from '../types.ts';
import { AnswerTooLarge, answerLimit, answerLimitedSocket, countable } from './postgres-answer-limit.ts';

export interface PostgresSqlOptions {
  /** `postgres://user[:password]@host:port/database`: the host's own user, which needs CREATEROLE. */
  url: string;
  /**
   * The host this backend serves. Capsules are told apart by name alone, so a second host on the
   * same database and prefix would read, change and drop the first's capsules' data: the first
   * host to open a store claims the prefix (`<prefix>_host.owner`), and any other host's opens
   * and drops there are refused. Without it (`stratum dev`, tools, tests) nothing is claimed, and
   * a prefix a host has claimed is refused too.
   */
  host?: SqlHostIdentity;
  /** Schema (and role) names start with this. */
  schemaPrefix?: string;
  /** Connections in each capsule database's pool. */
  maxConnections?: number;
  limits?: Partial<SqlLimits>;
  logger?: Logger;
  /**
   * Replaces the SQLite dialect's rewrite and refusals. Only tests set it: to show that what
   * keeps capsules apart is PostgreSQL's own privileges, with nothing refused before the server.
   */
  dialect?: (sql: string) => PostgresStatement;
  /**
   * How long the host's user waits for a lock while it opens or drops a capsule's database
   * (`lock_timeout`), 10 s by default; its statements end after 60 s (`statement_timeout`). So
   * one open that cannot go on does not hold up the others, which queue for the same connection.
   */
  lockTimeoutMs?: number;
}

const LOCK_TIMEOUT_MS = 10_000;
const ADMIN_STATEMENT_TIMEOUT_MS = 60_000;
/** How long after the server's own statement_timeout the host cancels a capsule's statement itself. */
const CANCEL_GRACE_MS = 1000;
/**
 * How often the server checks, while a capsule's statement runs, that its client is still
 * connected (PostgreSQL 14+, `client_connection_check_interval`): a statement whose host has
 * gone ends within this time rather than when it would next send a row.
 */
const CONNECTION_CHECK_MS = 2000;
/**
 * Capsule statements go as the extended protocol's one Parse, even without parameters (the
 * client's default there is the simple protocol, which runs several statements from one text):
 * the server itself then refuses a second statement, whatever the lexer made of the text.
 */
const ONE_STATEMENT = { simple: false } as postgres.UnsafeQueryOptions;

/**
 * How long a pool waits before it connects again after a connection failed, in seconds.
 * postgres.js's own delay grows to 20 s (3^n / 100), and a capsule's statement queued for that
 * connection waited with it: in an operator's outage, failed calls took 0.01, 0.8, 4.6, 13.4 s,
 * and a call made as the server came back waited 16 s and more for a connection it could have had.
 */
function reconnectDelaySeconds(retries: number): number {
  return Math.min(0.1 * 2 ** retries, 1);
}

/**
 * How long a connection may take to be ready, in seconds. postgres.js waits 30 s, and a capsule's
 * statement queued for a connection that the server never finished (an outage, a stalled proxy)
 * waited until the request's own timeout, the capsule taking the blame.
 */
const CONNECT_TIMEOUT_SECONDS = 5;

/** A capsule role's connections in this process, and the capsule statements running on them. */
interface Pool {
  sql: Sql;
  running: Set<{ cancel(): void }>;
  /** A connection ended because a statement's answer passed its bound, and the statement not yet failed for it. */
  tooLarge?: AnswerTooLarge | undefined;
}

type Sql = postgres.Sql;
/** A connection in a transaction: `sql.begin`'s, or a reserved one that a snapshot import began. */
type Transaction = postgres.TransactionSql | postgres.ReservedSql;

/**
 * PostgreSQL: one schema per capsule and label, owned by a role of the same name. A capsule's
 * statements run on connections that log in as that role, so the server's session user is the
 * capsule's own: `SET ROLE`, `set_config('role', ...)` and `RESET ROLE` can reach no other role,
 * since PostgreSQL checks them against the session user, which is a member of nothing. The
 * host's own user (the URL's) creates and drops schemas and roles on a connection of its own
 * that never runs a capsule's SQL. Roles log in with a password derived from a key that only
 * the host's user can read (`<prefix>_host.role_key`), so no password is stored anywhere else.
 * The dialect layer's refusals come on top, not instead (README.md, "The sandbox").
 */
export function postgresSql(options: PostgresSqlOptions): SqlBackend {
  const limits = { ...DEFAULT_SQL_LIMITS, ...options.limits };
  const logger = options.logger ?? silentLogger;
  const prefix = options.schemaPrefix ?? 'stratum';
  const translate = options.dialect ?? toPostgres;
  // Used when an instance opens its databases, then idle: closed rather than held by every worker.
  // Its search_path is pg_catalog alone, so that nothing a capsule creates can stand in for a
  // function or operator the host's own statements name. Its waits for locks are bounded, and so
  // is each of its statements: opens queue for this one connection, so one that cannot go on
  // must fail rather than hold up the others.
  const lockTimeoutMs = options.lockTimeoutMs ?? LOCK_TIMEOUT_MS;
  const admin = postgres(options.url, {
    max: 1,
    idle_timeout: 5,
    // A capsule pool's login waits on this connection (its password is set again first).
    backoff: reconnectDelaySeconds,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    onnotice: () => {},
    connection: {
      search_path: 'pg_catalog',
      application_name: 'stratum',
      lock_timeout: lockTimeoutMs,
      statement_timeout: ADMIN_STATEMENT_TIMEOUT_MS,
    },
  });
  const hostSchema = `${prefix}_host`;
  const pools = new Map<string, Pool>();
  const answersCountable = countable(options.url);
  let roleKey: Promise<Buffer> | undefined;
  const outage = new BackendOutage(logger, `the postgres sql backend at ${redactUrl(options.url)}`, [urlPassword(options.url)]);

  function failure(error: unknown): SqlError {
    if (error instanceof SqlError) return error;
    if (error instanceof AnswerTooLarge) {
      return new SqlError(
        'limit-exceeded',
        `${error.message}, over the limit of ${limits.maxResultBytes} bytes (and ${limits.maxRows} rows); add a LIMIT or select fewer or smaller columns`,
        { cause: error },
      );
    }
    const { code, message } = error as { code?: unknown; message?: string };
    const text = String(message ?? error);
    // The server going down, starting up or failing itself: the capsule sees the server's words, as
    // for any refusal, but it is the server's outage, not the statement's doing.
    if (typeof code === 'string' && /^(57P0[123]|58)/.test(code)) outage.failed(error);
    // Connection and login failures (08, 28, too many connections) are the host's to fix.
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^(08|28|3D|53300)/.test(code)) {
      if (code.startsWith('23')) return new SqlError('constraint-violation', text, { cause: error });
      if (code === '42501') return new SqlError('access-denied', text, { cause: error });
      // Cardinality: an upsert that would change one row twice, a scalar subquery of several rows
      // (SQLite takes the first); the statement's doing, as a syntax error is.
      if (code.startsWith('21')) return new SqlError('invalid-query', text, { cause: error });
      if (code === '53100' || code.startsWith('54')) return new SqlError('limit-exceeded', text, { cause: error });
      // statement_timeout: the statement ran longer than the capsule's own timeout.
      if (code === '57014')
        return new SqlError('limit-exceeded', `${text}: a statement may run as long as the capsule's [resources] timeout`, {
          cause: error,
        });
      if (code.startsWith('42') || code.startsWith('22') || code.startsWith('0A') || code.startsWith('3F') || code === '2BP01') {
        return new SqlError('invalid-query', text, { cause: error });
      }
      return new SqlError('other', text, { cause: error });
    }
    // The client's own limit on parameters (65,534), should a host's maxParams be above it.
    if (code === 'MAX_PARAMETERS_EXCEEDED') return new SqlError('limit-exceeded', text, { cause: error });
    // Connection failures name the server: the capsule gets none of it, the host's log the outage.
    outage.failed(error);
    return new SqlError('other', 'the database backend is unavailable', { cause: error });
  }

  /**
   * What the host's user was doing when it failed: waiting for a lock past lock_timeout, or a
   * statement past its own timeout, says so; anything else is `failure`'s.
   */
  function adminFailure(error: unknown, doing: string): SqlError {
    const code = (error as { code?: unknown }).code;
    if (code === '55P03' || code === '57014') {
      const what =
        code === '55P03'
          ? `waited ${lockTimeoutMs} ms for a lock, which another host or worker opening or dropping the same database, or the capsule's own statements, hold`
          : 'ran a statement past its 60 s';
      return new SqlError('other', `${doing}: the host's PostgreSQL user ${what}; try again`, { cause: error });
    }
    return failure(error);
  }

  /** The key capsule roles' passwords are derived from: made once per database and prefix. */
  function key(): Promise<Buffer> {
    roleKey ??= readRoleKey(admin, hostSchema).catch((error: unknown) => {
      roleKey = undefined;
      throw error;
    });
    return roleKey;
  }

  function poolFor(role: string, pass: () => Promise<string>): Pool {
    let pool = pools.get(role);
    if (!pool) {
      pool = newPool(role, pass, options.maxConnections ?? 10, true);
      pools.set(role, pool);
    }
    return pool;
  }

  /**
   * Connections that log in as a capsule's role. `counted`: each statement's answer is held to
   * `answerLimit` (postgres-answer-limit.ts), as the capsule's own statements must be; a snapshot's
   * dump reads whole tables, up to the database's quota, on a pool of its own that is not.
   */
  function newPool(role: string, pass: () => Promise<string>, max: number, counted: boolean): Pool {
    // Told only once a statement has run, by when `made` is set.
    let made: Pool | undefined;
    const tripped = (error: AnswerTooLarge) => {
      if (made) made.tooLarge = error;
    };
    const socket = counted && answersCountable ? answerLimitedSocket(answerLimit(limits), tripped) : undefined;
    const sql = postgres(options.url, {
      user: role,
      pass,
      max,
      backoff: reconnectDelaySeconds,
      connect_timeout: CONNECT_TIMEOUT_SECONDS,
      onnotice: () => {},
      connection: { search_path: ident(role), standard_conforming_strings: 'on', application_name: 'stratum' },
      // postgres.js takes `socket` (a function that makes the connection) but its types leave it out.
      ...((socket ? { socket } : {}) as object),
    });
    made = { sql, running: new Set() };
    return made;
  }

  /**
   * Cancels the capsule statements still running on a pool, then ends it: a statement whose
   * session turned its own statement_timeout off must not go on after the pool is gone.
   */
  async function endPool(pool: Pool | undefined): Promise<void> {
    if (!pool) return;
    for (const query of pool.running) query.cancel();
    await pool.sql.end({ timeout: 5 });
  }

  /**
   * Refuses, before anything is made or dropped, a database and prefix that another host claimed
   * (`SqlHostIdentity`); claims them for this host when nobody has. The same identity key is the
   * same host: restarted, or its data directory restored elsewhere (its name, if changed, is
   * recorded). Read on every open and drop, so that a prefix released by its operator (the
   * error's DELETE) is seen without a restart; only the first claim writes, and only a rename
   * updates, so opens of different stores do not queue on this row.
   */
  async function checkOwner(tx: Transaction, label: string): Promise<void> {
    const read = async () =>
      (await tx.unsafe(`SELECT key, name FROM ${ident(hostSchema)}.owner`))[0] as { key: string; name: string } | undefined;
    let owner = await read();
    const me = options.host;
    if (!owner && me) {
      await tx.unsafe(`INSERT INTO ${ident(hostSchema)}.owner (key, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [me.key, me.name]);
      owner = await read();
    }
    if (!owner) return;
    if (me && owner.key === me.key) {
      if (owner.name !== me.name) await tx.unsafe(`UPDATE ${ident(hostSchema)}.owner SET name = $1 WHERE key = $2`, [me.name, me.key]);
      return;
    }
    const [{ database } = { database: '' }] = await tx`SELECT current_database() AS database`;
    const self = me
      ? `this host, ${me.name} (identity key ${me.key})`
      : 'this process, which has no host identity (stratum dev, or a tool)';
    throw new SqlError(
      'other',
      `PostgreSQL database "${String(database)}" with schema_prefix "${prefix}" is the Stratum host ${owner.name}'s (identity key ${owner.key}), not ${self}: capsules are told apart by name alone, so two hosts on one database and prefix would read, change and delete each other's capsules' data. Give this host's [sql.${label}] schema_prefix in host.toml a value of its own (or its own database in url). If this is that host with a new identity key, or that host is gone for good and this one is to take over its stores, release the prefix as the host's PostgreSQL user: DELETE FROM ${ident(hostSchema)}.owner`,
    );
  }

  async function dropStore(schema: string, label: string): Promise<void> {
    const pool = pools.get(schema);
    pools.delete(schema);
    await endPool(pool);
    const roleKey = await key();
    await admin.begin(async (tx) => {
      await checkOwner(tx, label);
      await lockStore(tx, hostSchema, schema);
      const [role] = await tx`SELECT shobj_description(oid, 'pg_authid') AS comment, current_database() AS database
        FROM pg_roles WHERE rolname = ${schema}`;
      const owner = role && otherHost(role.comment, String(role.database), roleKey);
      if (owner !== undefined) {
        // Another host's role (roleMark): it and its sessions are not this host's to end; a
        // schema of that name in this database is from before roles were marked.
        logger.warn({ role: schema, owner }, 'postgres sql backend: not dropping a capsule role that belongs to another host');
        await tx.unsafe(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
        await tx.unsafe(`DELETE FROM ${ident(hostSchema)}.stores WHERE name = $1`, [schema]);
        return;
      }
      // DROP SCHEMA and DROP OWNED act with the role's privileges: a host that made the role is
      // a member of it already, one that did not (another host, an older version) becomes one.
      if (role) await tx.unsafe(`GRANT ${ident(schema)} TO CURRENT_USER`);
      // Another worker's connections would go on as a role that no longer exists.
      await tx`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE usename = ${schema} AND pid <> pg_backend_pid() AND pg_has_role(usename, 'MEMBER')`;
      // As the host's own user, not the capsule's role: the role cannot drop itself.
      await tx.unsafe(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
      if (role) {
        // What else would keep the role, and DROP ROLE fail for ever: what it owns outside its
        // schema (large objects, default privileges) and privileges other roles gave it here
        // (another capsule's GRANT USAGE ON SCHEMA <its own> TO <this role>). DROP OWNED drops
        // the one and revokes the other, in this database; the role can log in to no other.
        await tx.unsafe(`DROP OWNED BY ${ident(schema)} CASCADE`);
        await tx.unsafe(`DROP ROLE ${ident(schema)}`);
      }
      await tx.unsafe(`DELETE FROM ${ident(hostSchema)}.stores WHERE name = $1`, [schema]);
    });
  }

  let collationChecked: Promise<void> | undefined;
  /**
   * TEXT columns sort by code point, as SQLite's, whatever the database's collation (the dialect
   * gives them COLLATE "C"); other text (literals, parameters, casts, columns of tables created
   * before that) sorts by the database's. Said once, as a warning rather than a refusal: the
   * difference is that narrow, and a host bound to an existing database keeps working.
   */
  async function checkCollation(): Promise<void> {
    try {
      const [row] = await admin`SELECT * FROM pg_database WHERE datname = current_database()`;
      if (!row) return;
      const order = databaseOrder(row);
      if (order.codePoint) return;
      logger.warn(
        { database: row.datname, collation: order.locale, provider: order.provider },
        `PostgreSQL database ${String(row.datname)} sorts text by ${order.provider} collation "${order.locale}", not by code point as SQLite does: TEXT columns still sort as in SQLite, but ORDER BY, min(), max() and comparisons of other text (literals, parameters, casts, TEXT columns of tables created before this host version) give another order. For SQLite's order everywhere, give Stratum a database created with: CREATE DATABASE <name> TEMPLATE template0 LOCALE 'C.UTF-8'`,
      );
    } catch (error) {
      logger.debug({ err: String(error) }, 'could not read the PostgreSQL database collation');
    }
  }

  return {
    type: 'postgres',
    synchronous: false,
    async open(scope: DatabaseScope) {
      checkScope(scope);
      collationChecked ??= checkCollation();
      await collationChecked;
      const schema = schemaName(prefix, scope);
      const password = await prepareStore(scope, schema);
      outage.answered();
      const pass = loginPassword(scope, schema, password);
      return openDatabase(
        poolFor(schema, pass),
        { open: () => newPool(schema, pass, 1, false), end: endPool },
        schema,
        limits,
        { failure, answered: () => outage.answered() },
        translate,
        scope.statementTimeoutMs,
        () => dropStore(schema, scope.label),
      );
    },
    async drop(scope: DatabaseScope) {
      checkScope(scope);
      try {
        await dropStore(schemaName(prefix, scope), scope.label);
      } catch (error) {
        throw adminFailure(error, `dropping ${scope.capsule}'s database ${scope.label}`);
      }
      outage.answered();
    },
    async close() {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all([admin.end({ timeout: 5 }), ...all.map(endPool)]);
    },
  };

  /**
   * The password a capsule's pool logs in with, asked for at each login the server checks with a
   * password (never under `trust`). A capsule role may set its own password, which nothing in
   * PostgreSQL stops (README.md): so each login first sets the host's again, as an open does,
   * rather than fail until the capsule's next instance opens its database. Waiting for a login
   * to fail first does not do: after a connection that died under a statement, the client
   * library (postgres 3.4) retries a refused login over and over, never failing the query.
   * Logins are few (a pool's first ones, and one after a connection is lost or recycled), and
   * the logins of one pool at once share one reset. Never throws: the client library does not
   * await it where it could catch it; a reset that fails is logged, and the login goes on with
   * the password the host derives.
   */
  function loginPassword(scope: DatabaseScope, schema: string, password: string): () => Promise<string> {
    let resetting: Promise<void> | undefined;
    return async () => {
      resetting ??= resetPassword(scope, schema, password)
        .catch((error: unknown) => {
          logger.warn(
            { capsule: scope.capsule, label: scope.label, role: schema, err: String((error as Error)?.message ?? error) },
            "postgres sql backend: could not set a capsule role's password again before its login",
          );
        })
        .finally(() => {
          resetting = undefined;
        });
      await resetting;
      return password;
    };
  }

  /** Sets a capsule role's password again, as its open does, where the role and prefix are this host's. */
  async function resetPassword(scope: DatabaseScope, schema: string, password: string): Promise<void> {
    const roleKey = await key();
    await admin.begin(async (tx) => {
      await checkOwner(tx, scope.label);
      // Locked as an open or a drop locks it, but not made: a store dropped meanwhile stays gone.
      const [store] = await tx.unsafe(`SELECT 1 FROM ${ident(hostSchema)}.stores WHERE name = $1 FOR UPDATE`, [schema]);
      const [role] = await tx`SELECT shobj_description(oid, 'pg_authid') AS comment, current_database() AS database
        FROM pg_roles WHERE rolname = ${schema}`;
      // Dropped (its data deleted): the login fails, as it should.
      if (!store || !role || otherHost(role.comment, String(role.database), roleKey) !== undefined) return;
      await tx.unsafe(`ALTER ROLE ${ident(schema)} PASSWORD ${literal(scramVerifier(password, schema))}`);
    });
  }

  /**
   * Makes a capsule's role and schema, or checks and sets them again (the password, its mark, its
   * defaults, what it may reach), as the host's user; returns the role's password.
   */
  async function prepareStore(scope: DatabaseScope, schema: string): Promise<string> {
    let password: string;
    try {
      const roleKey = await key();
      password = rolePassword(roleKey, schema);
      await admin.begin(async (tx) => {
        await checkOwner(tx, scope.label);
        // Two hosts (or workers) opening the same database at once must not race to create it.
        const statementTimeoutMs = await lockStore(tx, hostSchema, schema, scope.statementTimeoutMs);
        const [{ database } = { database: '' }] = await tx`SELECT current_database() AS database`;
        const [role] = await tx`SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = ${schema}`;
        const owner = role && otherHost(role.comment, String(database), roleKey);
        if (owner !== undefined) {
          throw new SqlError(
            'other',
            `PostgreSQL role ${schema} belongs to ${owner}, on the same cluster with the same schema_prefix "${prefix}": roles are the cluster's, not a database's, so the two hosts would reset each other's passwords. Give this host's [sql.${scope.label}] another schema_prefix in host.toml; or, if that host and its database are gone, drop the role (or clear its mark: COMMENT ON ROLE ${ident(schema)} IS NULL)`,
          );
        }
        // Set on every open, so that the password follows the key (and undoes any change).
        const verifier = literal(scramVerifier(password, schema));
        if (!role) await tx.unsafe(`CREATE ROLE ${ident(schema)} LOGIN NOINHERIT PASSWORD ${verifier}`);
        else await tx.unsafe(`ALTER ROLE ${ident(schema)} LOGIN PASSWORD ${verifier}`);
        const mark = roleMark(String(database), roleKey);
        if (role?.comment !== mark) await tx.unsafe(`COMMENT ON ROLE ${ident(schema)} IS ${literal(mark)}`);
        await setRoleDefaults(tx, schema, statementTimeoutMs);
        // CREATE SCHEMA ... AUTHORIZATION asks the host's user to be a member of the owner.
        await tx.unsafe(`GRANT ${ident(schema)} TO CURRENT_USER`);
        await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)} AUTHORIZATION ${ident(schema)}`);
        await checkClosed(tx, schema, scope.label, logger);
      });
    } catch (error) {
      throw adminFailure(error, `opening ${scope.capsule}'s database ${scope.label}`);
    }
    return password;
  }
}

/**
 * The host's own schema, `<prefix>_host`: the key (`role_key`), a row for each capsule database
 * (`stores`), which an open or drop locks, and the host that claimed the prefix (`owner`). It
 * belongs to the host's user and no capsule role may use it, so, unlike an advisory lock, which
 * any session may take on any number, no capsule can hold what the host waits for. Only its
 * owner's workers and tools use it: another host is refused (`checkOwner`).
 */
async function readRoleKey(admin: Sql, schema: string): Promise<Buffer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await admin.begin(async (tx) => {
        const [made] = await tx`SELECT to_regclass(${`${ident(schema)}.role_key`}) IS NOT NULL
          AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(${`${ident(schema)}.stores`}) AND attname = 'statement_timeout_ms')
          AND to_regclass(${`${ident(schema)}.owner`}) IS NOT NULL AS done`;
        if (!made?.done) {
          await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
          await tx.unsafe(`REVOKE ALL ON SCHEMA ${ident(schema)} FROM PUBLIC`);
          await tx.unsafe(
            `CREATE TABLE IF NOT EXISTS ${ident(schema)}.role_key (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), key bytea NOT NULL)`,
          );
          await tx.unsafe(`REVOKE ALL ON ${ident(schema)}.role_key FROM PUBLIC`);
          await tx.unsafe(`CREATE TABLE IF NOT EXISTS ${ident(schema)}.stores (name text PRIMARY KEY)`);
          await tx.unsafe(`ALTER TABLE ${ident(schema)}.stores ADD COLUMN IF NOT EXISTS statement_timeout_ms integer`);
          await tx.unsafe(`REVOKE ALL ON ${ident(schema)}.stores FROM PUBLIC`);
          await tx.unsafe(
            `CREATE TABLE IF NOT EXISTS ${ident(schema)}.owner (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), key text NOT NULL, name text NOT NULL, since timestamptz NOT NULL DEFAULT now())`,
          );
          await tx.unsafe(`REVOKE ALL ON ${ident(schema)}.owner FROM PUBLIC`);
        }
        await tx.unsafe(`INSERT INTO ${ident(schema)}.role_key (key) VALUES ($1) ON CONFLICT DO NOTHING`, [randomBytes(32)]);
        const [row] = await tx.unsafe(`SELECT key FROM ${ident(schema)}.role_key`);
        return Buffer.from(row?.key as Uint8Array);
      });
    } catch (error) {
      // Two hosts making the schema at once: one of them finds the other's name taken (23505,
      // 42P06, 42P07, 42701) or its catalog row changed (XX000); the next attempt finds them made.
      const code = (error as { code?: unknown }).code;
      const race = ['23505', '42P06', '42P07', '42701', 'XX000', '40P01'].includes(String(code));
      if (!race || attempt === 5) throw error;
    }
  }
}

/**
 * Locks the row of one capsule database in the host's schema for the transaction: an open and a
 * drop of the same database, on any host or worker, run one at a time. The wait is bounded by
 * the host's user's lock_timeout. The row keeps the capsule's statement timeout, as the last
 * open that knew it (an instance's) gave it: the role's default, which an open for an export or
 * an import, without one, keeps.
 */
async function lockStore(tx: Transaction, hostSchema: string, name: string, statementTimeoutMs?: number): Promise<number | undefined> {
  const timeout = statementTimeoutMs === undefined ? null : Math.max(1, Math.round(statementTimeoutMs));
  const [row] = await tx.unsafe(
    `INSERT INTO ${ident(hostSchema)}.stores (name, statement_timeout_ms) VALUES ($1, $2)
      ON CONFLICT (name) DO UPDATE SET statement_timeout_ms = coalesce(excluded.statement_timeout_ms, stores.statement_timeout_ms)
      RETURNING statement_timeout_ms`,
    [name, timeout],
  );
  return typeof row?.statement_timeout_ms === 'number' ? row.statement_timeout_ms : undefined;
}

/**
 * A capsule role's defaults, set on each open. A role may set its own (ALTER ROLE CURRENT_USER
 * SET ..., also IN DATABASE ..., which RESET ALL alone leaves), and they would apply to every
 * later session of it: all of them are reset, in every database. Then the host's: the capsule's
 * statement timeout, which a session that RESETs its own still runs under, and
 * client_connection_check_interval (PostgreSQL 14+), so that a statement ends soon after its
 * client has gone. A session can still change either for itself: the host also cancels a
 * capsule's statement past its timeout, and those running when its pool closes.
 */
async function setRoleDefaults(tx: Transaction, role: string, statementTimeoutMs: number | undefined): Promise<void> {
  await tx.unsafe(`ALTER ROLE ${ident(role)} RESET ALL`);
  const databases = await tx`SELECT d.datname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
    WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = ${role})`;
  for (const { datname } of databases) await tx.unsafe(`ALTER ROLE ${ident(role)} IN DATABASE ${ident(String(datname))} RESET ALL`);
  if (statementTimeoutMs !== undefined) await tx.unsafe(`ALTER ROLE ${ident(role)} SET statement_timeout = ${statementTimeoutMs}`);
  const [{ version } = { version: 0 }] = await tx`SELECT current_setting('server_version_num')::int AS version`;
  if (Number(version) >= 140000) await tx.unsafe(`ALTER ROLE ${ident(role)} SET client_connection_check_interval = ${CONNECTION_CHECK_MS}`);
}

/**
 * Roles are the cluster's, the key is a database's: two hosts on two databases of one cluster
 * with the same schema_prefix would name the same role for a capsule of the same name, and each
 * open would set its password to its own key's. So each role carries the mark of the host that
 * made it, its database and an id of its key, as its comment (readable by every role, written
 * only by a CREATEROLE user): an open or a drop goes on when either matches (the same database
 * under a new key, or the same key in a renamed or restored database), and otherwise the role is
 * another host's. A role without a mark was made before marks were; the next open marks it.
 */
const MARK = 'stratum-sql ';

function keyId(key: Buffer): string {
  return createHash('sha256').update('stratum-sql-key-id:').update(key).digest('hex').slice(0, 16);
}

function roleMark(database: string, key: Buffer): string {
  return `${MARK}${JSON.stringify({ database, key: keyId(key) })}`;
}

/** Whose a role is, from its comment, when it is not this host's; undefined when it is. */
function otherHost(comment: unknown, database: string, key: Buffer): string | undefined {
  if (comment === null || comment === undefined || comment === '') return undefined;
  const text = String(comment);
  if (text.startsWith(MARK)) {
    try {
      const mark = JSON.parse(text.slice(MARK.length)) as { database?: unknown; key?: unknown };
      if (mark.database === database || mark.key === keyId(key)) return undefined;
      return `the Stratum host of database "${String(mark.database)}"`;
    } catch {
      // Not a mark of ours: below.
    }
  }
  return `a role this host did not make (its comment: ${JSON.stringify(text.slice(0, 80))})`;
}

/** A capsule role's password: the same on every host that shares the key, and stored nowhere. */
function rolePassword(key: Buffer, role: string): string {
  return createHmac('sha256', key).update(`stratum-sql-role:${role}`).digest('base64url');
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802, RFC 7677). Sent in
 * place of the password, so that the password itself is never in a statement the server might
 * log. The salt is derived too, so setting it again changes nothing.
 */
function scramVerifier(password: string, role: string, iterations = 4096): string {
  const salt = createHash('sha256').update(`stratum-sql-salt:${role}:${password}`).digest().subarray(0, 16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/**
 * A capsule role may create objects in its own schema and nowhere else. PostgreSQL gives PUBLIC
 * TEMPORARY on every new database (temporary tables: outside the schema, its quota, and any
 * clean-up) and, before version 15, CREATE on the public schema (shared by all capsules). The
 * host revokes them where it may (it owns the database), and otherwise refuses the database,
 * saying what its owner must run. The role must also be a member of no role at all, or SET ROLE
 * could reach that role: memberships are revoked (before PostgreSQL 16 a role's own session
 * could grant the role to another, so refusing would let one capsule shut another out).
 */
async function checkClosed(tx: Transaction, role: string, label: string, logger: Logger): Promise<void> {
  const open = async () => {
    const [row] = await tx`
      SELECT has_database_privilege(${role}, current_database(), 'TEMPORARY') AS temp,
        current_database() AS database,
        array(SELECT nspname FROM pg_namespace WHERE nspname <> ${role} AND has_schema_privilege(${role}, oid, 'CREATE')) AS schemas,
        array(SELECT m.roleid::regrole::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = ${role}) AS memberships,
        (SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = ${role}) AS powers`;
    return row as { temp: boolean; database: string; schemas: string[]; memberships: string[]; powers: boolean };
  };
  const before = await open();
  if (!before.temp && before.schemas.length === 0 && before.memberships.length === 0 && !before.powers) return;
  const revokes = [
    ...(before.temp ? [`REVOKE TEMPORARY ON DATABASE ${ident(before.database)} FROM PUBLIC`] : []),
    ...before.schemas.map((schema) => `REVOKE CREATE ON SCHEMA ${ident(schema)} FROM PUBLIC`),
    ...before.memberships.map((granted) => `REVOKE ${granted} FROM ${ident(role)}`),
  ];
  // Without the right to, PostgreSQL only warns; what is left is read again below.
  for (const revoke of revokes) await tx.unsafe(revoke);
  const found = await open();
  const problems = [
    ...(found.temp ? [`REVOKE TEMPORARY ON DATABASE ${ident(found.database)} FROM PUBLIC`] : []),
    ...found.schemas.map((schema) => `REVOKE CREATE ON SCHEMA ${ident(schema)} FROM PUBLIC`),
    ...found.memberships.map((granted) => `REVOKE ${granted} FROM ${ident(role)}`),
    ...(found.powers ? [`ALTER ROLE ${ident(role)} NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS`] : []),
  ];
  if (problems.length > 0) {
    throw new SqlError(
      'other',
      `capsule role ${role} could reach beyond its own schema; as the database's owner (or a superuser) run: ${problems.join('; ')}`,
    );
  }
  const database = ident(found.database);
  // PUBLIC is every role: a privilege given to PUBLIC cannot be withheld from one role alone, so
  // closing it to capsule roles closed it to every role in the database that was not granted it
  // by name. Said as a warning, with how to give it back; the next open finds it closed and says
  // nothing.
  if (before.temp) {
    logger.warn(
      { statement: `REVOKE TEMPORARY ON DATABASE ${database} FROM PUBLIC`, database: found.database },
      `PostgreSQL database ${database} ([sql.${label}] url): this host ran REVOKE TEMPORARY ON DATABASE ${database} FROM PUBLIC, so that capsule roles cannot make temporary tables (outside their schema and its size quota). Every other role in that database lost temporary tables too, unless granted them by name: give them back to a role that needs them with GRANT TEMPORARY ON DATABASE ${database} TO <role>. Better, give Stratum a database of its own (spec/host-config/README.md); once no host uses this one, GRANT TEMPORARY ON DATABASE ${database} TO PUBLIC undoes this (a host still using it would revoke it again)`,
    );
  }
  for (const schema of before.schemas) {
    logger.warn(
      { statement: `REVOKE CREATE ON SCHEMA ${ident(schema)} FROM PUBLIC`, database: found.database },
      `PostgreSQL database ${database} ([sql.${label}] url): this host ran REVOKE CREATE ON SCHEMA ${ident(schema)} FROM PUBLIC, so that capsule roles cannot create objects outside their own schema. Every other role that created objects there without a grant of its own lost that too: give it back with GRANT CREATE ON SCHEMA ${ident(schema)} TO <role>. Better, give Stratum a database of its own (spec/host-config/README.md); once no host uses this one, GRANT CREATE ON SCHEMA ${ident(schema)} TO PUBLIC undoes this`,
    );
  }
  if (before.memberships.length > 0) {
    logger.info({ role, revoked: before.memberships }, "postgres sql backend: revoked the capsule role's memberships of other roles");
  }
}

/**
 * How a database sorts text, from its pg_database row (columns differ by version: the provider
 * from 15, `datlocale` from 17). Code point order is SQLite's BINARY for UTF-8 text.
 */
export function databaseOrder(row: Record<string, unknown>): { codePoint: boolean; provider: string; locale: string } {
  const provider = ({ c: 'libc', i: 'ICU', b: 'builtin' } as Record<string, string>)[String(row.datlocprovider ?? 'c')] ?? 'unknown';
  const locale = String((provider === 'libc' ? row.datcollate : (row.datlocale ?? row.daticulocale)) ?? '');
  const codePoint =
    (provider === 'libc' && /^(C|POSIX|C\.UTF-?8)$/i.test(locale)) ||
    (provider === 'builtin' && /^(C|C\.UTF-?8|PG_UNICODE_FAST)$/i.test(locale));
  return { codePoint, provider, locale };
}

export function schemaName(prefix: string, scope: DatabaseScope): string {
  const name = `${prefix}_${scope.capsule.length}_${scope.capsule}_${scope.label}`;
  if (name.length <= 63) return name;
  return `${prefix}_h_${createHash('sha256').update(`${scope.capsule}/${scope.label}`).digest('hex').slice(0, 40)}`;
}

/** The password in a `postgres://` URL, which a failure's text must not show. */
function urlPassword(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    return undefined;
  }
}

function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function toParam(value: SqlValue): string | Uint8Array | null {
  switch (value.tag) {
    case 'null':
      return null;
    case 'integer':
      return value.val.toString();
    case 'real':
      return Number.isNaN(value.val) ? 'NaN' : String(value.val);
    case 'text':
      return value.val;
    case 'blob':
      return value.val;
  }
}

const INTEGER_TYPES = new Set([20, 21, 23, 26]);
const REAL_TYPES = new Set([700, 701]);
const NUMERIC = 1700;
const BOOL = 16;
const BYTEA = 17;

function fromText(raw: Buffer | null, type: number): SqlValue {
  if (raw === null) return { tag: 'null' };
  const text = raw.toString();
  if (INTEGER_TYPES.has(type)) return { tag: 'integer', val: BigInt(text) };
  if (REAL_TYPES.has(type)) return { tag: 'real', val: Number(text) };
  // SUM and AVG of integers are numeric in PostgreSQL; SQLite gives an integer for a whole sum.
  // A whole numeric beyond 64 bits is a real, as SQLite has it: the s64 would wrap.
  if (type === NUMERIC && /^-?[0-9]+$/.test(text)) {
    const whole = BigInt(text);
    if (BigInt.asIntN(64, whole) === whole) return { tag: 'integer', val: whole };
  }
  if (type === NUMERIC) return { tag: 'real', val: Number(text) };
  if (type === BOOL) return { tag: 'integer', val: text === 't' ? 1n : 0n };
  if (type === BYTEA) return { tag: 'blob', val: new Uint8Array(Buffer.from(text.slice(2), 'hex')) };
  return { tag: 'text', val: text };
}

interface RawResult {
  count: number;
  columns?: { name: string; type: number }[];
  [index: number]: (Buffer | null)[];
  length: number;
}

function openDatabase(
  pool: Pool,
  dumps: { open(): Pool; end(pool: Pool): Promise<void> },
  schema: string,
  limits: SqlLimits,
  /** The backend's: its failures mapped for the capsule, and outages counted (`BackendOutage`). */
  calls: { failure: (error: unknown) => SqlError; answered: () => void },
  translate: (sql: string) => PostgresStatement,
  statementTimeoutMs: number | undefined,
  drop: () => Promise<void>,
): SqlDatabase {
  const { sql, running } = pool;
  const { failure } = calls;
  const identityColumns = new Map<string, string | null>();
  // PostgreSQL's own: 0 is none. A statement the request's end did not stop is cancelled by the server.
  const statementTimeout = String(statementTimeoutMs === undefined ? 0 : Math.max(1, Math.round(statementTimeoutMs)));

  /**
   * Sends one of the capsule's statements, as one Parse (ONE_STATEMENT). The server cancels it at
   * statement_timeout; a statement whose transaction turned that off (SET statement_timeout = 0
   * past the dialect's refusals) is cancelled by the host a moment later, with a cancel request
   * no session setting changes. Those still running when the pool closes are cancelled too.
   */
  async function send(tx: Transaction, text: string, params: SqlValue[]): Promise<RawResult> {
    const query = tx.unsafe(text, params.map(toParam) as postgres.ParameterOrJSON<never>[], ONE_STATEMENT);
    running.add(query);
    const timer = statementTimeoutMs === undefined ? undefined : setTimeout(() => query.cancel(), statementTimeoutMs + CANCEL_GRACE_MS);
    try {
      return (await query.raw()) as unknown as RawResult;
    } finally {
      clearTimeout(timer);
      running.delete(query);
    }
  }

  /**
   * The settings every capsule statement runs under, for the transaction `tx` is in. No role: the
   * connection logs in as the capsule's own. The connection starts with search_path and
   * standard_conforming_strings; they are set again for each transaction, because a setting a
   * statement changed for its session would otherwise stay on the pooled connection.
   * standard_conforming_strings off (a database's default may say so) makes '\'' a quote inside
   * a string, where the dialect's lexer reads the string as ended: text it took for a string
   * would reach the server as SQL. UTC and ISO dates, as SQLite's CURRENT_TIMESTAMP, whatever the
   * server's own settings.
   */
  async function enter(tx: Transaction): Promise<void> {
    await tx`SELECT set_config('search_path', ${ident(schema)}, true), set_config('statement_timeout', ${statementTimeout}, true), set_config('standard_conforming_strings', 'on', true), set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true)`;
  }

  function inSchema<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return inSchemaOf(sql, work);
  }

  async function inSchemaOf<T>(on: Sql, work: (tx: Transaction) => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = (await on.begin(async (tx) => {
        await enter(tx);
        return work(tx);
      })) as T;
    } catch (error) {
      throw failure(answerTooLarge(error) ?? error);
    }
    calls.answered();
    return result;
  }

  /** The bound a statement's answer passed, when `error` is its connection's end (`Pool.tooLarge`). */
  function answerTooLarge(error: unknown): AnswerTooLarge | undefined {
    const tooLarge = pool.tooLarge;
    if (!tooLarge || !/^CONNECTION_(CLOSED|DESTROYED|ENDED)$/.test(String((error as { code?: unknown } | null)?.code))) return undefined;
    pool.tooLarge = undefined;
    return tooLarge;
  }

  async function mapped<T>(work: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await work();
    } catch (error) {
      throw failure(error);
    }
    calls.answered();
    return result;
  }

  async function clearIn(tx: Transaction): Promise<void> {
    identityColumns.clear();
    const tables = await tx`SELECT tablename FROM pg_tables WHERE schemaname = ${schema}`;
    for (const { tablename } of tables) await tx.unsafe(`DROP TABLE IF EXISTS ${ident(String(tablename))} CASCADE`);
    const views = await tx`SELECT viewname FROM pg_views WHERE schemaname = ${schema}`;
    for (const { viewname } of views) await tx.unsafe(`DROP VIEW IF EXISTS ${ident(String(viewname))} CASCADE`);
  }

  async function insertRowsIn(tx: Transaction, table: string, columns: string[], rows: SqlValue[][]): Promise<void> {
    const placeholders = columns.map((_, i) => `$${i + 1}`).join(', ');
    const statement = `INSERT INTO ${ident(table)} (${columns.map(ident).join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${placeholders})`;
    for (const row of rows) await tx.unsafe(statement, row.map(toParam) as postgres.ParameterOrJSON<never>[]);
    // Identity columns continue after the highest imported key, as SQLite's rowid does.
    const key = await identityColumn(tx, table);
    if (key !== null && columns.includes(key)) {
      await tx.unsafe(
        `SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(${ident(key)}) FROM ${ident(table)}), 0) + 1, false)`,
        [`${ident(schema)}.${ident(table)}`, key],
      );
    }
    await checkSize(tx);
  }

  function checkStatement(text: string, params: SqlValue[]): void {
    checkStatementSize(text, limits);
    const tokens = singleStatement(text, 'postgres');
    checkParamLimit(countParams(tokens), limits);
    checkParamCount(tokens, params.length);
  }

  async function run(tx: Transaction, text: string, params: SqlValue[]): Promise<RawResult> {
    checkStatement(text, params);
    const translated = translate(text);
    return send(tx, translated.text, params);
  }

  async function identityColumn(tx: Transaction, table: string): Promise<string | null> {
    if (identityColumns.has(table)) return identityColumns.get(table) ?? null;
    const [row] = await tx`
      SELECT column_name FROM information_schema.columns
      WHERE table_schema = ${schema} AND table_name = ${table}
        AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')
      ORDER BY ordinal_position LIMIT 1`;
    const column = (row?.column_name as string | undefined) ?? null;
    identityColumns.set(table, column);
    return column;
  }

  async function execute(tx: Transaction, text: string, params: SqlValue[]): Promise<SqlOutcome> {
    checkStatement(text, params);
    const translated = translate(text);
    if (translated.kind !== 'INSERT') identityColumns.clear();
    const key = translated.insertInto === undefined ? null : await identityColumn(tx, translated.insertInto);
    // An upsert returns the rows it updated too; a row version this statement inserted has no
    // xmax yet, one that ON CONFLICT DO UPDATE wrote has its lock's.
    // On a line of its own: the statement may end in a -- comment.
    const statement = key === null ? translated.text : `${translated.text}\nRETURNING ${ident(key)}, xmax = 0`;
    const result = await send(tx, statement, params);
    // Deleting must stay possible at the quota: it is how a capsule gets back under it.
    if (translated.kind !== 'DELETE' && translated.keyword !== 'DROP') await checkSize(tx);
    let last: Buffer | null | undefined;
    for (let i = result.length - 1; key !== null && i >= 0 && last === undefined; i--) {
      if (result[i]?.[1]?.toString() === 't') last = result[i]?.[0];
    }
    // PostgreSQL's count for a SELECT is its rows; the interface counts changed rows only.
    const rowsAffected = CHANGES_ROWS.has(translated.kind) ? BigInt(result.count ?? 0) : 0n;
    return { rowsAffected, lastInsertId: last ? BigInt(last.toString()) : undefined };
  }

  async function schemaBytes(tx: Transaction | Sql): Promise<number> {
    const [row] = await tx`
      SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'm')`;
    return Number(row?.bytes ?? 0);
  }

  /**
   * PostgreSQL has no per-schema limit: measure the relations' size on disk after each write,
   * and undo the write if it went over. Space freed by deletes is reused once autovacuum has
   * seen it, so the figure can stay above the live data for a while.
   */
  async function checkSize(tx: Transaction): Promise<void> {
    if ((await schemaBytes(tx)) > limits.maxDatabaseBytes) throw databaseFull(limits);
  }

  return {
    query: (text, params) =>
      inSchema(async (tx): Promise<SqlRows> => {
        const result = await run(tx, text, params);
        if (result.length > limits.maxRows) throw tooManyRows(limits);
        const columns = result.columns ?? [];
        const rows: SqlValue[][] = [];
        const meter = resultMeter(limits);
        for (let i = 0; i < result.length; i++) {
          const raw = result[i] ?? [];
          rows.push(columns.map((column, index) => fromText(raw[index] ?? null, column.type)));
          meter(rows[i] as SqlValue[], rows);
        }
        return { columns: columns.map((column) => column.name), rows };
      }),
    execute: (text, params) => inSchema((tx) => execute(tx, text, params)),
    transaction: (statements: SqlStatement[]) =>
      inSchema(async (tx) => {
        if (statements.length > limits.maxStatements) {
          throw new SqlError(
            'limit-exceeded',
            `${statements.length} statements in one transaction, over the limit of ${limits.maxStatements}`,
          );
        }
        const outcomes: SqlOutcome[] = [];
        for (const statement of statements) outcomes.push(await execute(tx, statement.sql, statement.params));
        return outcomes;
      }),
    size: () => inSchema((tx) => schemaBytes(tx)),
    tables: () =>
      (async function* () {
        const dump = dumps.open();
        try {
          yield* dumpTables(schema, (work) => inSchemaOf(dump.sql, work));
        } finally {
          await dumps.end(dump);
        }
      })(),
    clear: () => inSchema(clearIn),
    drop: async () => {
      identityColumns.clear();
      try {
        await drop();
      } catch (error) {
        throw failure(error);
      }
    },
    beginImport: () =>
      mapped(async () => {
        // One connection for the whole import, outside the pool's per-call transactions, so
        // that the clearing and every write commit together or not at all.
        const tx = await sql.reserve();
        let done = false;
        const end = async (statement: 'COMMIT' | 'ROLLBACK') => {
          if (done) return;
          done = true;
          try {
            await tx.unsafe(statement);
          } finally {
            tx.release();
          }
        };
        try {
          await tx.unsafe('BEGIN');
          await enter(tx);
        } catch (error) {
          tx.release();
          throw error;
        }
        const session: SqlImport = {
          clear: () => mapped(() => clearIn(tx)),
          execute: (text) =>
            mapped(async () => {
              await execute(tx, text, []);
            }),
          insertRows: (table, columns, rows) => mapped(() => insertRowsIn(tx, table, columns, rows)),
          commit: () => mapped(() => end('COMMIT')),
          rollback: () => mapped(() => end('ROLLBACK')),
        };
        return session;
      }),
  };
}

const PG_TO_SQLITE: Record<string, string> = {
  bigint: 'INTEGER',
  integer: 'INTEGER',
  smallint: 'INTEGER',
  boolean: 'INTEGER',
  'double precision': 'REAL',
  real: 'REAL',
  numeric: 'NUMERIC',
  text: 'TEXT',
  'character varying': 'TEXT',
  bytea: 'BLOB',
};

/**
 * Tables as SQLite-dialect definitions, built from the catalog: columns with their types,
 * NOT NULL, defaults that are plain literals, the primary key, UNIQUE and FOREIGN KEY
 * constraints, and indexes. CHECK constraints and other defaults are left out (./README.md).
 */
async function* dumpTables(schema: string, inSchema: <T>(work: (tx: Transaction) => Promise<T>) => Promise<T>): AsyncIterable<TableDump> {
  const tables = await inSchema(
    (tx) => tx`SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relkind = 'r' ORDER BY c.oid`,
  );
  for (const { name } of tables) {
    const table = String(name);
    const definition = await inSchema(async (tx) => {
      const columns = await tx`
        SELECT column_name, data_type, is_nullable, column_default, is_identity
        FROM information_schema.columns WHERE table_schema = ${schema} AND table_name = ${table} ORDER BY ordinal_position`;
      const constraints = await tx`
        SELECT con.contype AS type, array_agg(att.attname ORDER BY k.ord) AS columns
        FROM pg_constraint con
        JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) ON true
        JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.attnum
        WHERE con.conrelid = ${`${ident(schema)}.${ident(table)}`}::regclass AND con.contype IN ('p', 'u')
        GROUP BY con.oid, con.contype ORDER BY con.oid`;
      // A foreign key reads the same in both dialects (REFERENCES t(c) ON DELETE CASCADE, ...); a
      // CHECK is deparsed with PostgreSQL's casts ('x'::text, = ANY (ARRAY[...])), which SQLite
      // refuses, so checks stay behind rather than fail an import into SQLite.
      const foreignKeys = await tx`
        SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint
        WHERE conrelid = ${`${ident(schema)}.${ident(table)}`}::regclass AND contype = 'f' ORDER BY oid`;
      const indexes = await tx`
        SELECT indexname, indexdef FROM pg_indexes i
        WHERE schemaname = ${schema} AND tablename = ${table}
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = ${schema}::regnamespace)`;
      return { columns, constraints, foreignKeys, indexes };
    });
    const primary = definition.constraints.find((constraint) => constraint.type === 'p');
    const primaryColumns = (primary?.columns as string[] | undefined) ?? [];
    // A single identity primary key is SQLite's rowid alias. Its sequence never gives a key
    // again, deleted or not, which in SQLite is AUTOINCREMENT's promise.
    const rowidAlias = definition.columns.find(
      (column) => primaryColumns.length === 1 && primaryColumns[0] === column.column_name && column.is_identity === 'YES',
    )?.column_name;
    const lines = definition.columns.map((column) => {
      const columnName = String(column.column_name);
      const type = PG_TO_SQLITE[String(column.data_type)] ?? 'TEXT';
      const parts = [ident(columnName), columnName === rowidAlias ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : type];
      if (column.is_nullable === 'NO' && columnName !== rowidAlias) parts.push('NOT NULL');
      const fallback = column.column_default === null ? undefined : String(column.column_default);
      if (fallback !== undefined && /^('([^']|'')*'|-?[0-9.]+)(::[a-z ]+)?$/.test(fallback))
        parts.push(`DEFAULT ${fallback.replace(/::[a-z ]+$/, '')}`);
      return parts.join(' ');
    });
    if (primaryColumns.length > 0 && rowidAlias === undefined) lines.push(`PRIMARY KEY (${primaryColumns.map(ident).join(', ')})`);
    for (const constraint of definition.constraints) {
      if (constraint.type === 'u') lines.push(`UNIQUE (${(constraint.columns as string[]).map(ident).join(', ')})`);
    }
    for (const foreignKey of definition.foreignKeys) lines.push(String(foreignKey.definition));
    const columnNames = definition.columns.map((column) => String(column.column_name));
    const rows = await inSchema(
      async (tx) =>
        (await tx.unsafe(`SELECT ${columnNames.map(ident).join(', ')} FROM ${ident(table)} ORDER BY 1`).raw()) as unknown as RawResult,
    );
    const types = rows.columns ?? [];
    yield {
      name: table,
      sql: `CREATE TABLE ${ident(table)} (${lines.join(', ')})`,
      indexes: definition.indexes.map((index) =>
        String(index.indexdef)
          .replace(` ON ${schema}.`, ' ON ')
          .replace(` ON ${ident(schema)}.`, ' ON ')
          .replace(/ USING btree /, ' '),
      ),
      columns: columnNames,
      rows: (async function* () {
        for (let i = 0; i < rows.length; i++) {
          const raw = rows[i] ?? [];
          yield types.map((column, index) => fromText(raw[index] ?? null, column.type));
        }
      })(),
    };
  }
}
