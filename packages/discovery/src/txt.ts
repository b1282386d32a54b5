import { StratumError } from '@stratum/core';

/** The version every Stratum TXT record starts with; a record with another version is not ours to read. */
export const PROTOCOL_VERSION = 'stratum1';

/** RFC 1035 section 3.3: a character-string holds at most 255 octets. */
export const MAX_STRING_OCTETS = 255;
/** The most RDATA octets (length bytes included) a Stratum TXT record may hold. */
export const MAX_RECORD_OCTETS = 1024;
export const MAX_KEY_LENGTH = 16;

const KEY = /^[a-z0-9][a-z0-9-]*$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

/** A parsed TXT record: keys in lower case, each with its values in record order. */
export type TxtPairs = ReadonlyMap<string, readonly string[]>;

function txtError(code: string, message: string, detail: string): StratumError {
  return new StratumError(code, message, {
    details: [detail],
    hint: 'Stratum TXT records are key=value strings of printable ASCII, starting with v=stratum1 (spec/discovery.md section 3).',
  });
}

/** The wire size of a TXT record's RDATA: each string plus its length octet. */
export function txtRecordOctets(strings: readonly string[]): number {
  let total = 0;
  for (const item of strings) total += 1 + Buffer.byteLength(item);
  return total;
}

/**
 * Splits a TXT record into key=value pairs under the rules of spec/discovery.md section 3:
 * printable ASCII only, at most 255 octets a string and 1024 a record, `v=stratum1` first,
 * keys case-insensitive. Values are not interpreted here; `repeatable` names the keys that may
 * appear more than once (any other key twice is an error).
 */
export function parseTxtPairs(strings: readonly string[], repeatable: ReadonlySet<string> = new Set()): TxtPairs {
  if (!Array.isArray(strings)) throw txtError('TXT_INVALID', 'a TXT record must be a list of strings', `got ${typeof strings}`);
  if (strings.length === 0) throw txtError('TXT_EMPTY', 'the TXT record holds no strings', 'a Stratum record starts with v=stratum1');
  const nonString = strings.findIndex((item) => typeof item !== 'string');
  if (nonString >= 0) throw txtError('TXT_INVALID', `string ${nonString + 1} is not a string`, `got ${typeof strings[nonString]}`);
  const octets = txtRecordOctets(strings);
  if (octets > MAX_RECORD_OCTETS) {
    throw txtError('TXT_TOO_LARGE', `the TXT record is ${octets} octets, more than ${MAX_RECORD_OCTETS}`, 'split it or drop optional keys');
  }
  const pairs = new Map<string, string[]>();
  strings.forEach((item, index) => {
    const place = `string ${index + 1}`;
    if (Buffer.byteLength(item) > MAX_STRING_OCTETS) {
      throw txtError(
        'TXT_STRING_TOO_LONG',
        `${place} is longer than ${MAX_STRING_OCTETS} octets`,
        `it is ${Buffer.byteLength(item)} octets`,
      );
    }
    if (!PRINTABLE.test(item)) {
      throw txtError('TXT_NOT_ASCII', `${place} holds a byte outside printable ASCII`, JSON.stringify(item.slice(0, 60)));
    }
    const equals = item.indexOf('=');
    if (equals < 0) throw txtError('TXT_NO_VALUE', `${place} is not key=value`, JSON.stringify(item.slice(0, 60)));
    const key = item.slice(0, equals).toLowerCase();
    const value = item.slice(equals + 1);
    if (key.length === 0 || key.length > MAX_KEY_LENGTH || !KEY.test(key)) {
      throw txtError(
        'TXT_BAD_KEY',
        `${place} has an invalid key "${key.slice(0, 20)}"`,
        `a key is 1 to ${MAX_KEY_LENGTH} letters, digits or hyphens, starting with a letter or digit`,
      );
    }
    if (index === 0 && key !== 'v') throw txtError('TXT_NO_VERSION', 'the first string must be the version, v=stratum1', `got "${key}"`);
    if (index > 0 && key === 'v') throw txtError('TXT_DUPLICATE_KEY', `${place} repeats the version key v`, 'v appears once, first');
    if (index === 0 && value !== PROTOCOL_VERSION) {
      throw txtError(
        'TXT_UNSUPPORTED_VERSION',
        `the record is version "${value.slice(0, 40)}", not ${PROTOCOL_VERSION}`,
        'this implementation reads stratum1',
      );
    }
    const existing = pairs.get(key);
    if (existing && !repeatable.has(key))
      throw txtError('TXT_DUPLICATE_KEY', `${place} repeats the key "${key}"`, `"${key}" may appear once`);
    if (existing) existing.push(value);
    else pairs.set(key, [value]);
  });
  return pairs;
}

/**
 * True when the record's first string starts `v=stratum` in any case, whatever the version: it
 * belongs to this protocol family. `v=` alone is not enough, since SPF, DKIM and DMARC records
 * start with it too; any case, so that a mistyped `v=STRATUM1` is reported, not passed over.
 */
export function isStratumTxt(strings: readonly string[]): boolean {
  const first = strings[0];
  return typeof first === 'string' && first.slice(0, 9).toLowerCase() === 'v=stratum';
}

/**
 * The one record to read among the TXT records at a name (spec section 3.4): other protocols'
 * records are skipped, and a name holding two `v=stratum1` records names nothing, since reading
 * either would let whoever added the second choose. Returns undefined when no record is
 * Stratum's; throws RECORD_AMBIGUOUS, or TXT_UNSUPPORTED_VERSION when only other versions are.
 * The chosen record is returned unparsed: whether it is well-formed is the parser's question.
 */
export function chooseStratumRecord(records: readonly (readonly string[])[], name = 'the name'): readonly string[] | undefined {
  const ours = records.filter(isStratumTxt);
  if (ours.length === 0) return undefined;
  // The key is case-insensitive, the version value is not (spec section 3.1).
  const current = ours.filter((strings) => strings[0]?.slice(2) === PROTOCOL_VERSION);
  if (current.length > 1) {
    throw new StratumError('RECORD_AMBIGUOUS', `${name} holds ${current.length} v=${PROTOCOL_VERSION} records`, {
      details: current.map((strings) => strings.join(' ').slice(0, 120)),
      hint: `Publish exactly one v=${PROTOCOL_VERSION} record at this name.`,
    });
  }
  if (current[0]) return current[0];
  const versions = ours.map((strings) => JSON.stringify(strings[0]?.slice(2, 42)));
  throw txtError(
    'TXT_UNSUPPORTED_VERSION',
    `${name} holds only records of other versions (${versions.join(', ')}), none of ${PROTOCOL_VERSION}`,
    `this implementation reads ${PROTOCOL_VERSION}`,
  );
}

/**
 * Builds a TXT record from pairs in the given order, version first. Throws when a string or the
 * record would break the size rules, so a record that formats always parses.
 */
export function formatTxtPairs(pairs: readonly (readonly [string, string])[]): string[] {
  const strings = [`v=${PROTOCOL_VERSION}`, ...pairs.map(([key, value]) => `${key}=${value}`)];
  parseTxtPairs(strings, new Set(pairs.map(([key]) => key)));
  return strings;
}
