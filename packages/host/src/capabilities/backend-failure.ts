import { type Logger, redactUrl } from '@stratum/core';

/**
 * Opening a granted label's backend when an instance starts. A backend's own error is written for
 * the guest, which must not learn where the host keeps its data ("the key-value backend is
 * unavailable"); an instance that cannot start is reported to the host's operator, who needs the
 * label, the backend, where it is and the cause to fix it, and to the registrar that installed
 * it, who needs to know which store failed but not where the host keeps it
 * (`BackendUnavailableError`). So the start failure is rewritten here, once for every store-like
 * capability, with credentials taken out.
 */
export interface BackendPlace {
  /** The capability and what it calls a label's store: `keyvalue` `store`, `sql` `database`. */
  capability: string;
  noun: string;
  label: string;
  /** The backend's `type` in host.toml. */
  type: string;
  /** Its URL or location, when host.toml gives one. */
  where?: string | undefined;
  /** Values that must not appear in the message (a secret key the backend was given). */
  secrets?: readonly (string | undefined)[];
}

/** The innermost cause's text: what the backend's wrapping errors were about. */
function causeText(error: unknown): string {
  let inner = error;
  for (let depth = 0; depth < 8 && inner instanceof Error && inner.cause !== undefined; depth++) inner = inner.cause;
  if (!(inner instanceof Error)) return String(inner);
  // Node's connection to a name with several addresses (localhost) fails as an AggregateError
  // with no message of its own; each attempt's error names its address.
  if (!inner.message && inner instanceof AggregateError) return inner.errors.map((one) => causeText(one)).join('; ');
  return inner.message || (inner as { code?: string }).code || inner.name;
}

/** Credentials written into any URL in the text, and the place's secrets, masked. */
function scrub(text: string, place: BackendPlace): string {
  return mask(text, [place.where ? safeDecode(safeUrl(place.where)?.password ?? '') : '', ...(place.secrets ?? [])]);
}

function mask(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:)[^\s/@]*@/gi, '$1***@');
  for (const secret of secrets) if (secret && secret.length >= 4) out = out.split(secret).join('***');
  return out;
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `the keyvalue store "default" (redis at redis://127.0.0.1:6390/0)`; without `where`, `(redis)` alone. */
export function describePlace(place: BackendPlace, where = true): string {
  const at = where && place.where ? ` at ${place.where.split(' ').map(redactUrl).join(' ')}` : '';
  const what = place.capability === place.noun ? place.noun : `${place.capability} ${place.noun}`;
  return `the ${what} "${place.label}" (${place.type}${at})`;
}

/**
 * A store an instance could not open. Its message names the backend's address and the cause,
 * for the host's log; `shown` names the store and the backend's type only, for the capsule's
 * status and log, which its registrar reads: a registrar learns that the host's store failed,
 * not where the host keeps its data (an address on its private network, a database's name).
 */
export class BackendUnavailableError extends Error {
  readonly shown: string;

  constructor(message: string, shown: string, options: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendUnavailableError';
    this.shown = shown;
  }
}

/**
 * Runs `open` (making the backend and opening the label's store on it); its failure becomes
 * `the keyvalue store "default" (redis at redis://127.0.0.1:6390/0) is unavailable: connect
 * ECONNREFUSED 127.0.0.1:6390`, the original kept as the cause.
 */
export async function openForInstance<T>(place: BackendPlace, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (error) {
    throw new BackendUnavailableError(
      scrub(`${describePlace(place)} is unavailable: ${causeText(error)}`, place),
      `${describePlace(place, false)} is unavailable on this host (its operator's log names the backend and the cause)`,
      { cause: error },
    );
  }
}

/**
 * A backend's outages in the host's log: the first failure of one, with its cause, and the
 * recovery, with how long it lasted and how many calls failed meanwhile. Logged per failed call,
 * a Redis that was down wrote a line every 1.6 s for each capsule using it, an S3 store 113 a
 * second under load, and nothing when it came back (an operator walkthrough). One per backend
 * object, which every store a worker opens on it shares: one outage is one line, whatever the
 * number of stores. Only failures that are the backend's count (it is unreachable, refuses the
 * host, or fails itself); a capsule's own mistakes (a syntax error, a missing object, its quota)
 * are its own to see, and are not outages.
 */
export class BackendOutage {
  readonly #logger: Logger;
  readonly #what: string;
  readonly #secrets: readonly (string | undefined)[];
  #since: number | undefined;
  #failures = 0;

  /**
   * `what`: the backend as the log names it, its URL's credentials taken out. `secrets`: values
   * the cause must not show (a password, a secret key), masked as a failed start masks them.
   */
  constructor(logger: Logger, what: string, secrets: readonly (string | undefined)[] = []) {
    this.#logger = logger;
    this.#what = what;
    this.#secrets = secrets;
  }

  /** `call`: a capsule's call failed, which is counted; false for the client's own report (a reconnect that failed). */
  failed(error: unknown, call = true): void {
    if (call) this.#failures++;
    if (this.#since !== undefined) return;
    this.#since = Date.now();
    this.#logger.warn(
      { err: mask(causeText(error), this.#secrets) },
      `${this.#what} does not answer: its capsules' calls fail until it does (logged again once it answers)`,
    );
  }

  answered(): void {
    if (this.#since === undefined) return;
    this.#logger.info({ downMs: Date.now() - this.#since, failedCalls: this.#failures }, `${this.#what} answers again`);
    this.#since = undefined;
    this.#failures = 0;
  }
}
