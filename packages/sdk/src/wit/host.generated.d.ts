// Generated from spec/wit (world stratum:capsule/capsule) by `jco types`; do not edit.
// Regenerate with `node packages/sdk/src/wit/types.ts`; tests/wit.test.ts checks it is current.
/** stratum-bucket-objects */
export namespace StratumBucketObjects {
  /** @module Interface stratum:bucket/objects@0.1.0 **/
  /**
   * Opens the bucket the manifest grants under `label`.
   */
  export function open(label: string): Bucket;
  /**
   * Why an operation failed.
   */
  export type Error = ErrorNoSuchBucket | ErrorAccessDenied | ErrorInvalidName | ErrorInvalidRange | ErrorLimitExceeded | ErrorOther;
  /**
   * The label is not one the manifest grants, or the host has no bucket for it.
   */
  export interface ErrorNoSuchBucket {
    tag: 'no-such-bucket',
  }
  /**
   * The bucket exists but this capsule may not use it.
   */
  export interface ErrorAccessDenied {
    tag: 'access-denied',
  }
  /**
   * An object name that is empty, over 1024 bytes, or holds a NUL or a `..` segment.
   */
  export interface ErrorInvalidName {
    tag: 'invalid-name',
    val: string,
  }
  /**
   * A range that starts past the end of the object.
   */
  export interface ErrorInvalidRange {
    tag: 'invalid-range',
  }
  /**
   * A limit was reached: chunk or object too large, the storage quota.
   */
  export interface ErrorLimitExceeded {
    tag: 'limit-exceeded',
    val: string,
  }
  /**
   * Anything else (the backend is down, a timeout); the string is for logs.
   */
  export interface ErrorOther {
    tag: 'other',
    val: string,
  }
  /**
   * What is known about a stored object.
   */
  export interface ObjectInfo {
    name: string,
    /**
     * Size in bytes.
     */
    size: bigint,
    /**
     * The content type given when it was stored, if any.
     */
    contentType?: string,
    /**
     * Changes whenever the content changes; quoted as in HTTP (`"..."`).
     */
    etag: string,
    /**
     * When it was last written, in milliseconds since the Unix epoch.
     */
    modifiedMs: bigint,
  }
  /**
   * Part of an object: `length` bytes from `offset` (none: to the end).
   */
  export interface ByteRange {
    offset: bigint,
    length?: bigint,
  }
  /**
   * Bytes read from an object, with what is known about the whole object.
   */
  export interface ObjectData {
    info: ObjectInfo,
    /**
     * The bytes in the range asked for (all of them when no range was given), at most the
     * host's chunk limit (at least 1 MiB); read on with a range when `data` is shorter.
     */
    data: Uint8Array,
  }
  /**
   * One page of `list-objects`.
   */
  export interface ListPage {
    /**
     * Objects in ascending byte order of name.
     */
    objects: Array<ObjectInfo>,
    /**
     * Pass this to the next `list-objects` call; none when there are no more objects.
     */
    cursor?: string,
  }

  export class Bucket {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Stores a whole object in one call (at most the host's chunk limit), replacing any object
    * of that name.
    */
    put(name: string, data: Uint8Array, contentType: string | undefined): ObjectInfo;
    /**
    * Reads an object, or part of it; none when there is no such object.
    */
    get(name: string, range: ByteRange | undefined): ObjectData | undefined;
    /**
    * What is known about an object, without its bytes; none when there is no such object.
    */
    head(name: string): ObjectInfo | undefined;
    /**
    * Removes an object; removing one that does not exist is not an error.
    */
    'delete'(name: string): void;
    /**
    * Object names that start with `prefix` (none: all), a page (at most `limit`, at most
    * 1000, default 1000) at a time. Start with `cursor` none.
    */
    listObjects(prefix: string | undefined, cursor: string | undefined, limit: number | undefined): ListPage;
    /**
    * Starts writing an object in chunks.
    */
    startUpload(name: string, contentType: string | undefined): Upload;
  }

  export class Upload {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Appends a chunk (at most the host's chunk limit, at least 1 MiB).
    */
    write(chunk: Uint8Array): void;
    /**
    * Stores the object, replacing any object of that name, and returns its info.
    */
    finish(): ObjectInfo;
    /**
    * Discards what was written.
    */
    abort(): void;
  }
}

/** stratum-crypto-primitives */
export namespace StratumCryptoPrimitives {
  /** @module Interface stratum:crypto/primitives@0.1.0 **/
  /**
   * PBKDF2 (RFC 8018) with HMAC of `hash`: `length` bytes derived from `password` and `salt`
   * in `iterations` rounds. A host MUST accept 1 to 1,000,000 iterations and a length of 1 to
   * 1,024 bytes, and MAY refuse more with `invalid-input`.
   */
  export function pbkdf2(hash: Hash, password: Uint8Array, salt: Uint8Array, iterations: number, length: number): Uint8Array;
  /**
   * HKDF (RFC 5869), extract then expand: `length` bytes (at most 255 times the hash's size).
   */
  export function hkdf(hash: Hash, key: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /**
   * AES-GCM (NIST SP 800-38D) with a 16, 24 or 32-byte key and an IV of 1 to 1,024 bytes
   * (12 is the one to use). Returns the ciphertext with its tag of `tag-length` bytes (4, 8,
   * or 12 to 16) appended, as WebCrypto does.
   */
  export function aesGcmEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array, additionalData: Uint8Array, tagLength: number): Uint8Array;
  /**
   * The reverse of `aes-gcm-encrypt`: `data` ends with the tag. `operation-failed` when the
   * tag does not check out.
   */
  export function aesGcmDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array, additionalData: Uint8Array, tagLength: number): Uint8Array;
  /**
   * A new key pair. `modulus-bits` (2048 to 8192, a multiple of 8) and `public-exponent`
   * (3 or 65537) are for RSA and ignored for the others.
   */
  export function generateKeyPair(keyType: KeyType, modulusBits: number, publicExponent: number): KeyInfo;
  /**
   * Parses and checks a private key: `invalid-input` names what is wrong with one that does
   * not parse, or is of another type than `key-type`.
   */
  export function inspectPrivateKey(key: PrivateKey, keyType: KeyType): KeyInfo;
  /**
   * Signs `data`, hashed with `hash` (not for ed25519, which hashes itself), with a PKCS#8
   * private key of the scheme's type. `salt-length` is RSA-PSS's, in bytes.
   */
  export function sign(scheme: SignatureScheme, hash: Hash, privateKey: Uint8Array, data: Uint8Array, saltLength: number): Uint8Array;
  /**
   * Whether `signature` is one of `data` by the public key (SPKI) of the scheme's type; false
   * for a signature that does not check out, whatever its shape. `invalid-input` for a key that
   * does not parse or is of another type.
   */
  export function verify(scheme: SignatureScheme, hash: Hash, publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array, saltLength: number): boolean;
  /**
   * ECDH (P-256, P-384, P-521) or X25519: the secret a PKCS#8 private key and a public key
   * (SPKI) of the same type agree on; the curve's size in bytes (X25519: 32).
   */
  export function deriveSharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /**
   * AES-CBC with PKCS#7 padding, a 16, 24 or 32-byte key and a 16-byte IV.
   */
  export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array;
  /**
   * The reverse of `aes-cbc-encrypt`. `operation-failed` when the padding does not check out.
   */
  export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array;
  /**
   * # Variants
   * 
   * ## `"sha1"`
   * 
   * ## `"sha256"`
   * 
   * ## `"sha384"`
   * 
   * ## `"sha512"`
   */
  export type Hash = 'sha1' | 'sha256' | 'sha384' | 'sha512';
  /**
   * The asymmetric keys `generate-key-pair` makes: P-256, P-384 and P-521 keys sign (ECDSA)
   * and agree on secrets (ECDH), RSA and Ed25519 keys sign, X25519 keys agree on secrets.
   * # Variants
   * 
   * ## `"p256"`
   * 
   * ## `"p384"`
   * 
   * ## `"p521"`
   * 
   * ## `"rsa"`
   * 
   * ## `"ed25519"`
   * 
   * ## `"x25519"`
   */
  export type KeyType = 'p256' | 'p384' | 'p521' | 'rsa' | 'ed25519' | 'x25519';
  /**
   * # Variants
   * 
   * ## `"ecdsa"`
   * 
   * On P-256, P-384 or P-521; the signature is r and s, each the curve's size (IEEE P1363),
   * as WebCrypto gives it.
   * ## `"rsassa-pkcs1-v1-5"`
   * 
   * ## `"rsa-pss"`
   * 
   * ## `"ed25519"`
   */
  export type SignatureScheme = 'ecdsa' | 'rsassa-pkcs1-v1-5' | 'rsa-pss' | 'ed25519';
  /**
   * A private key as the guest holds it.
   */
  export type PrivateKey = PrivateKeyPkcs8 | PrivateKeyJwk;
  /**
   * PKCS#8 (RFC 5208), DER.
   */
  export interface PrivateKeyPkcs8 {
    tag: 'pkcs8',
    val: Uint8Array,
  }
  /**
   * A private JSON Web Key (RFC 7517), as JSON text.
   */
  export interface PrivateKeyJwk {
    tag: 'jwk',
    val: string,
  }
  /**
   * A private key, checked, in both forms, with its public key.
   */
  export interface KeyInfo {
    keyType: KeyType,
    /**
     * The RSA modulus's size in bits; 0 for the other types.
     */
    modulusBits: number,
    pkcs8: Uint8Array,
    /**
     * The private JWK as JSON text, without `alg`, `use`, `key_ops` or `ext`.
     */
    jwk: string,
    /**
     * The public key, as a SubjectPublicKeyInfo (RFC 5280), DER.
     */
    publicKey: Uint8Array,
  }
  /**
   * Why a call failed.
   */
  export type Error = ErrorInvalidInput | ErrorOperationFailed;
  /**
   * An input out of its bounds: a key of another size than 16, 24 or 32 bytes, an IV of the
   * wrong length, iterations or a length beyond the host's limits. The string says which.
   */
  export interface ErrorInvalidInput {
    tag: 'invalid-input',
    val: string,
  }
  /**
   * Decryption failed: the data, its tag or its padding does not check out with this key.
   */
  export interface ErrorOperationFailed {
    tag: 'operation-failed',
  }
}

/** stratum-intl-services */
export namespace StratumIntlServices {
  /** @module Interface stratum:intl/services@0.1.0 **/
  /**
   * `text` in a normalization form of Unicode Standard Annex #15, as ECMAScript's
   * `String.prototype.normalize` gives it.
   */
  export function normalize(text: string, form: NormalizationForm): string;
  /**
   * `method` of `new Intl[service](locales, options)`, with `options`, `args` (an array)
   * and the result as JSON text; numbers JSON cannot hold, and BigInts, as objects
   * (`{"number":"NaN"}`, `{"bigint":"12"}`). An empty `locales` is `en-US` and a
   * `date-time-format` without a `timeZone` is in UTC, whatever the host's own, so that a
   * capsule formats alike on every host. The methods of each service: spec/wit/README.md.
   */
  export function call(service: Service, locales: Array<string>, options: string, method: string, args: string): string;
  /**
   * Makes `new Intl[service](locales, options)` (not `locale`), checking its locales and options
   * as the constructor does, and gives its number for `format`: the same number for the same
   * arguments while the host keeps it. The short way for a formatter used more than once, since
   * `format` sends neither its locales nor its options again.
   */
  export function formatter(service: Service, locales: Array<string>, options: string): number;
  /**
   * `method` of a formatter `formatter` made, as `call` would answer it. `unknown-formatter`
   * when the host no longer keeps it: a host MAY forget the least recently made ones, and the
   * guest then makes it again.
   */
  export function format(formatter: number, method: Method, args: string): string;
  /**
   * # Variants
   * 
   * ## `"nfc"`
   * 
   * ## `"nfd"`
   * 
   * ## `"nfkc"`
   * 
   * ## `"nfkd"`
   */
  export type NormalizationForm = 'nfc' | 'nfd' | 'nfkc' | 'nfkd';
  /**
   * The ECMA-402 constructors, `Intl.Collator` to `Intl.Segmenter`.
   * # Variants
   * 
   * ## `"collator"`
   * 
   * ## `"date-time-format"`
   * 
   * ## `"display-names"`
   * 
   * ## `"list-format"`
   * 
   * ## `"locale"`
   * 
   * ## `"number-format"`
   * 
   * ## `"plural-rules"`
   * 
   * ## `"relative-time-format"`
   * 
   * ## `"segmenter"`
   */
  export type Service = 'collator' | 'date-time-format' | 'display-names' | 'list-format' | 'locale' | 'number-format' | 'plural-rules' | 'relative-time-format' | 'segmenter';
  /**
   * A formatter's methods, for `format`; which service has which: spec/wit/README.md.
   * # Variants
   * 
   * ## `"resolved-options"`
   * 
   * ## `"format"`
   * 
   * ## `"format-to-parts"`
   * 
   * ## `"format-range"`
   * 
   * ## `"format-range-to-parts"`
   * 
   * ## `"compare"`
   * 
   * ## `"of"`
   * 
   * ## `"select"`
   * 
   * ## `"select-range"`
   * 
   * ## `"segment"`
   * 
   * ## `"to-locale-string"`
   * 
   * ## `"to-locale-date-string"`
   * 
   * ## `"to-locale-time-string"`
   */
  export type Method = 'resolved-options' | 'format' | 'format-to-parts' | 'format-range' | 'format-range-to-parts' | 'compare' | 'of' | 'select' | 'select-range' | 'segment' | 'to-locale-string' | 'to-locale-date-string' | 'to-locale-time-string';
  /**
   * Why a call failed, as ECMA-402 would have thrown it.
   */
  export type Error = ErrorRangeError | ErrorTypeError | ErrorUnknownFormatter;
  /**
   * A locale tag that is not one, an option out of its range, a date that is not a time.
   */
  export interface ErrorRangeError {
    tag: 'range-error',
    val: string,
  }
  /**
   * A method the service does not have, or arguments of the wrong kind.
   */
  export interface ErrorTypeError {
    tag: 'type-error',
    val: string,
  }
  /**
   * `format` was given a formatter the host no longer keeps (or never made): make it again.
   */
  export interface ErrorUnknownFormatter {
    tag: 'unknown-formatter',
  }
}

/** stratum-keyvalue-atomics */
export namespace StratumKeyvalueAtomics {
  /** @module Interface stratum:keyvalue/atomics@0.1.0 **/
  /**
   * Adds `delta` to the signed 64-bit integer stored at `key` (as its decimal text, for
   * example "42") and returns the new value. A key that is not set counts as 0. A value that is
   * not such an integer is `other`.
   */
  export function increment(bucket: Bucket, key: string, delta: bigint): bigint;
  /**
   * Sets `key` to `replacement` only when its value is now `expected` (none: the key is not set).
   * Returns whether it did. Stratum's simpler form of wasi:keyvalue's `cas` resource.
   */
  export function compareAndSwap(bucket: Bucket, key: string, expected: Uint8Array | undefined, replacement: Uint8Array): boolean;
  export type Bucket = StratumKeyvalueStore.Bucket;
  export type Error = StratumKeyvalueStore.Error;
}

/** stratum-keyvalue-batch */
export namespace StratumKeyvalueBatch {
  /** @module Interface stratum:keyvalue/batch@0.1.0 **/
  /**
   * The values of `keys`, in the same order; none where a key is not set. At most 1000 keys.
   */
  export function getMany(bucket: Bucket, keys: Array<string>): Array<[string, Uint8Array] | undefined>;
  /**
   * Sets every pair. At most 1000 pairs.
   */
  export function setMany(bucket: Bucket, keyValues: Array<[string, Uint8Array]>): void;
  /**
   * Removes every key. At most 1000 keys.
   */
  export function deleteMany(bucket: Bucket, keys: Array<string>): void;
  export type Bucket = StratumKeyvalueStore.Bucket;
  export type Error = StratumKeyvalueStore.Error;
}

/** stratum-keyvalue-store */
export namespace StratumKeyvalueStore {
  /** @module Interface stratum:keyvalue/store@0.1.0 **/
  /**
   * Opens the store the manifest grants under `label`.
   */
  export function open(label: string): Bucket;
  /**
   * Why an operation failed.
   */
  export type Error = ErrorNoSuchStore | ErrorAccessDenied | ErrorLimitExceeded | ErrorOther;
  /**
   * The label is not one the manifest grants, or the host has no store for it.
   */
  export interface ErrorNoSuchStore {
    tag: 'no-such-store',
  }
  /**
   * The store exists but this capsule may not use it.
   */
  export interface ErrorAccessDenied {
    tag: 'access-denied',
  }
  /**
   * A quota or limit was reached: key over 1024 bytes, value over the host's value limit
   * (at least 1 MiB), or the capsule's storage quota. The string says which.
   */
  export interface ErrorLimitExceeded {
    tag: 'limit-exceeded',
    val: string,
  }
  /**
   * Anything else (the backend is down, a timeout); the string is for logs.
   */
  export interface ErrorOther {
    tag: 'other',
    val: string,
  }
  /**
   * One page of keys from `list-keys`.
   */
  export interface KeyResponse {
    /**
     * Keys in this page, in ascending byte order.
     */
    keys: Array<string>,
    /**
     * Pass this to the next `list-keys` call; none when there are no more keys.
     */
    cursor?: string,
  }

  export class Bucket {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * The value of `key`, or none when it is not set (or its TTL has passed).
    */
    get(key: string): Uint8Array | undefined;
    /**
    * Sets `key` to `value`, replacing any value (and any TTL) it had.
    */
    set(key: string, value: Uint8Array): void;
    /**
    * Like `set`, and the key disappears after `ttl-ms` milliseconds (at least 1).
    */
    setWithTtl(key: string, value: Uint8Array, ttlMs: bigint): void;
    /**
    * Removes `key`; removing a key that is not set is not an error.
    */
    'delete'(key: string): void;
    /**
    * Whether `key` is set.
    */
    exists(key: string): boolean;
    /**
    * Keys in ascending byte order, a page (at most 1000) at a time. Start with `cursor` none.
    */
    listKeys(cursor: string | undefined): KeyResponse;
  }
}

/** stratum-sql-database */
export namespace StratumSqlDatabase {
  /** @module Interface stratum:sql/database@0.1.0 **/
  /**
   * Opens the database the manifest grants under `label`.
   */
  export function open(label: string): Connection;
  /**
   * One SQL value. Booleans are integers 0 and 1; dates are text or integers, as in SQLite.
   */
  export type Value = ValueNull | ValueInteger | ValueReal | ValueText | ValueBlob;
  export interface ValueNull {
    tag: 'null',
  }
  export interface ValueInteger {
    tag: 'integer',
    val: bigint,
  }
  export interface ValueReal {
    tag: 'real',
    val: number,
  }
  export interface ValueText {
    tag: 'text',
    val: string,
  }
  export interface ValueBlob {
    tag: 'blob',
    val: Uint8Array,
  }
  /**
   * Why an operation failed.
   */
  export type Error = ErrorNoSuchDatabase | ErrorAccessDenied | ErrorInvalidQuery | ErrorConstraintViolation | ErrorLimitExceeded | ErrorOther;
  /**
   * The label is not one the manifest grants, or the host has no database for it.
   */
  export interface ErrorNoSuchDatabase {
    tag: 'no-such-database',
  }
  /**
   * The database exists but this capsule may not use it.
   */
  export interface ErrorAccessDenied {
    tag: 'access-denied',
  }
  /**
   * The SQL did not parse, or names a table or column that does not exist, or has the wrong
   * number of parameters. The string is the engine's message.
   */
  export interface ErrorInvalidQuery {
    tag: 'invalid-query',
    val: string,
  }
  /**
   * A constraint failed: unique, primary key, not null, check, foreign key.
   */
  export interface ErrorConstraintViolation {
    tag: 'constraint-violation',
    val: string,
  }
  /**
   * A limit was reached: statement or result too large, too many rows, the storage quota.
   */
  export interface ErrorLimitExceeded {
    tag: 'limit-exceeded',
    val: string,
  }
  /**
   * Anything else (the backend is down, a timeout); the string is for logs.
   */
  export interface ErrorOther {
    tag: 'other',
    val: string,
  }
  /**
   * Rows a query returned.
   */
  export interface Rows {
    /**
     * Column names, in order.
     */
    columns: Array<string>,
    /**
     * One list per row, with one value per column.
     */
    rows: Array<Array<Value>>,
  }
  /**
   * What a statement changed.
   */
  export interface Outcome {
    /**
     * Rows inserted, updated or deleted.
     */
    rowsAffected: bigint,
    /**
     * The rowid (or serial key) of the last inserted row, when the statement inserted one.
     */
    lastInsertId?: bigint,
  }
  /**
   * One statement and its parameters, for `transaction`.
   */
  export interface Statement {
    sql: string,
    params: Array<Value>,
  }

  export class Connection {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Runs one statement that returns rows (SELECT, or anything with RETURNING). Parameters
    * bind to `?` placeholders in order.
    */
    query(sql: string, params: Array<Value>): Rows;
    /**
    * Runs one statement that changes data or schema.
    */
    execute(sql: string, params: Array<Value>): Outcome;
    /**
    * Runs the statements in order as one transaction: all take effect, or (on the first
    * error) none does. Returns one outcome per statement.
    */
    transaction(statements: Array<Statement>): Array<Outcome>;
  }
}

/** wasi-clocks-monotonic-clock */
export namespace WasiClocksMonotonicClock {
  /** @module Interface wasi:clocks/monotonic-clock@0.2.10 **/
  export function now(): Instant;
  export function resolution(): Duration;
  export function subscribeInstant(when: Instant): Pollable;
  export function subscribeDuration(when: Duration): Pollable;
  export type Pollable = WasiIoPoll.Pollable;
  export type Instant = bigint;
  export type Duration = bigint;
}

/** wasi-config-store */
export namespace WasiConfigStore {
  /** @module Interface wasi:config/store@0.2.0-draft **/
  /**
   * The value of one config key, or none when it is not set.
   */
  export function get(key: string): string | undefined;
  /**
   * Every config key and value the component may read.
   */
  export function getAll(): Array<[string, string]>;
  /**
   * Why a config value could not be read.
   */
  export type Error = ErrorUpstream | ErrorIo;
  /**
   * The source the host reads config from failed; the string says how.
   */
  export interface ErrorUpstream {
    tag: 'upstream',
    val: string,
  }
  /**
   * An I/O error; the string says which.
   */
  export interface ErrorIo {
    tag: 'io',
    val: string,
  }
}

/** wasi-http-incoming-handler */
export namespace WasiHttpIncomingHandler {
  /** @module Interface wasi:http/incoming-handler@0.2.10 **/
  export function handle(request: IncomingRequest, responseOut: ResponseOutparam): void;
  export type IncomingRequest = WasiHttpTypes.IncomingRequest;
  export type ResponseOutparam = WasiHttpTypes.ResponseOutparam;
}

/** wasi-http-outgoing-handler */
export namespace WasiHttpOutgoingHandler {
  /** @module Interface wasi:http/outgoing-handler@0.2.10 **/
  export function handle(request: OutgoingRequest, options: RequestOptions | undefined): FutureIncomingResponse;
  export type OutgoingRequest = WasiHttpTypes.OutgoingRequest;
  export type RequestOptions = WasiHttpTypes.RequestOptions;
  export type FutureIncomingResponse = WasiHttpTypes.FutureIncomingResponse;
  export type ErrorCode = WasiHttpTypes.ErrorCode;
}

/** wasi-http-types */
export namespace WasiHttpTypes {
  /** @module Interface wasi:http/types@0.2.10 **/
  export function httpErrorCode(err: IoError): ErrorCode | undefined;
  export type Duration = WasiClocksMonotonicClock.Duration;
  export type InputStream = WasiIoStreams.InputStream;
  export type OutputStream = WasiIoStreams.OutputStream;
  export type IoError = WasiIoError.Error;
  export type Pollable = WasiIoPoll.Pollable;
  export type Method = MethodGet | MethodHead | MethodPost | MethodPut | MethodDelete | MethodConnect | MethodOptions | MethodTrace | MethodPatch | MethodOther;
  export interface MethodGet {
    tag: 'get',
  }
  export interface MethodHead {
    tag: 'head',
  }
  export interface MethodPost {
    tag: 'post',
  }
  export interface MethodPut {
    tag: 'put',
  }
  export interface MethodDelete {
    tag: 'delete',
  }
  export interface MethodConnect {
    tag: 'connect',
  }
  export interface MethodOptions {
    tag: 'options',
  }
  export interface MethodTrace {
    tag: 'trace',
  }
  export interface MethodPatch {
    tag: 'patch',
  }
  export interface MethodOther {
    tag: 'other',
    val: string,
  }
  export type Scheme = SchemeHttp | SchemeHttps | SchemeOther;
  export interface SchemeHttp {
    tag: 'HTTP',
  }
  export interface SchemeHttps {
    tag: 'HTTPS',
  }
  export interface SchemeOther {
    tag: 'other',
    val: string,
  }
  export interface DnsErrorPayload {
    rcode?: string,
    infoCode?: number,
  }
  export interface TlsAlertReceivedPayload {
    alertId?: number,
    alertMessage?: string,
  }
  export interface FieldSizePayload {
    fieldName?: string,
    fieldSize?: number,
  }
  export type ErrorCode = ErrorCodeDnsTimeout | ErrorCodeDnsError | ErrorCodeDestinationNotFound | ErrorCodeDestinationUnavailable | ErrorCodeDestinationIpProhibited | ErrorCodeDestinationIpUnroutable | ErrorCodeConnectionRefused | ErrorCodeConnectionTerminated | ErrorCodeConnectionTimeout | ErrorCodeConnectionReadTimeout | ErrorCodeConnectionWriteTimeout | ErrorCodeConnectionLimitReached | ErrorCodeTlsProtocolError | ErrorCodeTlsCertificateError | ErrorCodeTlsAlertReceived | ErrorCodeHttpRequestDenied | ErrorCodeHttpRequestLengthRequired | ErrorCodeHttpRequestBodySize | ErrorCodeHttpRequestMethodInvalid | ErrorCodeHttpRequestUriInvalid | ErrorCodeHttpRequestUriTooLong | ErrorCodeHttpRequestHeaderSectionSize | ErrorCodeHttpRequestHeaderSize | ErrorCodeHttpRequestTrailerSectionSize | ErrorCodeHttpRequestTrailerSize | ErrorCodeHttpResponseIncomplete | ErrorCodeHttpResponseHeaderSectionSize | ErrorCodeHttpResponseHeaderSize | ErrorCodeHttpResponseBodySize | ErrorCodeHttpResponseTrailerSectionSize | ErrorCodeHttpResponseTrailerSize | ErrorCodeHttpResponseTransferCoding | ErrorCodeHttpResponseContentCoding | ErrorCodeHttpResponseTimeout | ErrorCodeHttpUpgradeFailed | ErrorCodeHttpProtocolError | ErrorCodeLoopDetected | ErrorCodeConfigurationError | ErrorCodeInternalError;
  export interface ErrorCodeDnsTimeout {
    tag: 'DNS-timeout',
  }
  export interface ErrorCodeDnsError {
    tag: 'DNS-error',
    val: DnsErrorPayload,
  }
  export interface ErrorCodeDestinationNotFound {
    tag: 'destination-not-found',
  }
  export interface ErrorCodeDestinationUnavailable {
    tag: 'destination-unavailable',
  }
  export interface ErrorCodeDestinationIpProhibited {
    tag: 'destination-IP-prohibited',
  }
  export interface ErrorCodeDestinationIpUnroutable {
    tag: 'destination-IP-unroutable',
  }
  export interface ErrorCodeConnectionRefused {
    tag: 'connection-refused',
  }
  export interface ErrorCodeConnectionTerminated {
    tag: 'connection-terminated',
  }
  export interface ErrorCodeConnectionTimeout {
    tag: 'connection-timeout',
  }
  export interface ErrorCodeConnectionReadTimeout {
    tag: 'connection-read-timeout',
  }
  export interface ErrorCodeConnectionWriteTimeout {
    tag: 'connection-write-timeout',
  }
  export interface ErrorCodeConnectionLimitReached {
    tag: 'connection-limit-reached',
  }
  export interface ErrorCodeTlsProtocolError {
    tag: 'TLS-protocol-error',
  }
  export interface ErrorCodeTlsCertificateError {
    tag: 'TLS-certificate-error',
  }
  export interface ErrorCodeTlsAlertReceived {
    tag: 'TLS-alert-received',
    val: TlsAlertReceivedPayload,
  }
  export interface ErrorCodeHttpRequestDenied {
    tag: 'HTTP-request-denied',
  }
  export interface ErrorCodeHttpRequestLengthRequired {
    tag: 'HTTP-request-length-required',
  }
  export interface ErrorCodeHttpRequestBodySize {
    tag: 'HTTP-request-body-size',
    val: bigint | undefined,
  }
  export interface ErrorCodeHttpRequestMethodInvalid {
    tag: 'HTTP-request-method-invalid',
  }
  export interface ErrorCodeHttpRequestUriInvalid {
    tag: 'HTTP-request-URI-invalid',
  }
  export interface ErrorCodeHttpRequestUriTooLong {
    tag: 'HTTP-request-URI-too-long',
  }
  export interface ErrorCodeHttpRequestHeaderSectionSize {
    tag: 'HTTP-request-header-section-size',
    val: number | undefined,
  }
  export interface ErrorCodeHttpRequestHeaderSize {
    tag: 'HTTP-request-header-size',
    val: FieldSizePayload | undefined,
  }
  export interface ErrorCodeHttpRequestTrailerSectionSize {
    tag: 'HTTP-request-trailer-section-size',
    val: number | undefined,
  }
  export interface ErrorCodeHttpRequestTrailerSize {
    tag: 'HTTP-request-trailer-size',
    val: FieldSizePayload,
  }
  export interface ErrorCodeHttpResponseIncomplete {
    tag: 'HTTP-response-incomplete',
  }
  export interface ErrorCodeHttpResponseHeaderSectionSize {
    tag: 'HTTP-response-header-section-size',
    val: number | undefined,
  }
  export interface ErrorCodeHttpResponseHeaderSize {
    tag: 'HTTP-response-header-size',
    val: FieldSizePayload,
  }
  export interface ErrorCodeHttpResponseBodySize {
    tag: 'HTTP-response-body-size',
    val: bigint | undefined,
  }
  export interface ErrorCodeHttpResponseTrailerSectionSize {
    tag: 'HTTP-response-trailer-section-size',
    val: number | undefined,
  }
  export interface ErrorCodeHttpResponseTrailerSize {
    tag: 'HTTP-response-trailer-size',
    val: FieldSizePayload,
  }
  export interface ErrorCodeHttpResponseTransferCoding {
    tag: 'HTTP-response-transfer-coding',
    val: string | undefined,
  }
  export interface ErrorCodeHttpResponseContentCoding {
    tag: 'HTTP-response-content-coding',
    val: string | undefined,
  }
  export interface ErrorCodeHttpResponseTimeout {
    tag: 'HTTP-response-timeout',
  }
  export interface ErrorCodeHttpUpgradeFailed {
    tag: 'HTTP-upgrade-failed',
  }
  export interface ErrorCodeHttpProtocolError {
    tag: 'HTTP-protocol-error',
  }
  export interface ErrorCodeLoopDetected {
    tag: 'loop-detected',
  }
  export interface ErrorCodeConfigurationError {
    tag: 'configuration-error',
  }
  export interface ErrorCodeInternalError {
    tag: 'internal-error',
    val: string | undefined,
  }
  export type HeaderError = HeaderErrorInvalidSyntax | HeaderErrorForbidden | HeaderErrorImmutable;
  export interface HeaderErrorInvalidSyntax {
    tag: 'invalid-syntax',
  }
  export interface HeaderErrorForbidden {
    tag: 'forbidden',
  }
  export interface HeaderErrorImmutable {
    tag: 'immutable',
  }
  export type FieldKey = string;
  export type FieldName = FieldKey;
  export type FieldValue = Uint8Array;
  export type Headers = Fields;
  export type Trailers = Fields;
  export type StatusCode = number;
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };

  export class Fields {
    constructor()
    static fromList(entries: Array<[FieldName, FieldValue]>): Fields;
    get(name: FieldName): Array<FieldValue>;
    has(name: FieldName): boolean;
    set(name: FieldName, value: Array<FieldValue>): void;
    'delete'(name: FieldName): void;
    append(name: FieldName, value: FieldValue): void;
    entries(): Array<[FieldName, FieldValue]>;
    clone(): Fields;
  }

  export class FutureIncomingResponse {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    subscribe(): Pollable;
    get(): Result<Result<IncomingResponse, ErrorCode>, void> | undefined;
  }

  export class FutureTrailers {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    subscribe(): Pollable;
    get(): Result<Result<Trailers | undefined, ErrorCode>, void> | undefined;
  }

  export class IncomingBody {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    stream(): InputStream;
    static finish(this_: IncomingBody): FutureTrailers;
  }

  export class IncomingRequest {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    method(): Method;
    pathWithQuery(): string | undefined;
    scheme(): Scheme | undefined;
    authority(): string | undefined;
    headers(): Headers;
    consume(): IncomingBody;
  }

  export class IncomingResponse {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    status(): StatusCode;
    headers(): Headers;
    consume(): IncomingBody;
  }

  export class OutgoingBody {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    write(): OutputStream;
    static finish(this_: OutgoingBody, trailers: Trailers | undefined): void;
  }

  export class OutgoingRequest {
    constructor(headers: Headers)
    body(): OutgoingBody;
    method(): Method;
    setMethod(method: Method): void;
    pathWithQuery(): string | undefined;
    setPathWithQuery(pathWithQuery: string | undefined): void;
    scheme(): Scheme | undefined;
    setScheme(scheme: Scheme | undefined): void;
    authority(): string | undefined;
    setAuthority(authority: string | undefined): void;
    headers(): Headers;
  }

  export class OutgoingResponse {
    constructor(headers: Headers)
    statusCode(): StatusCode;
    setStatusCode(statusCode: StatusCode): void;
    headers(): Headers;
    body(): OutgoingBody;
  }

  export class RequestOptions {
    constructor()
    connectTimeout(): Duration | undefined;
    setConnectTimeout(duration: Duration | undefined): void;
    firstByteTimeout(): Duration | undefined;
    setFirstByteTimeout(duration: Duration | undefined): void;
    betweenBytesTimeout(): Duration | undefined;
    setBetweenBytesTimeout(duration: Duration | undefined): void;
  }

  export class ResponseOutparam {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    static set(param: ResponseOutparam, response: Result<OutgoingResponse, ErrorCode>): void;
  }
}

/** wasi-io-error */
export namespace WasiIoError {
  /** @module Interface wasi:io/error@0.2.10 **/

  export class Error {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    toDebugString(): string;
  }
}

/** wasi-io-poll */
export namespace WasiIoPoll {
  /** @module Interface wasi:io/poll@0.2.10 **/
  export function poll(in_: Array<Pollable>): Uint32Array;

  export class Pollable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    ready(): boolean;
    block(): void;
  }
}

/** wasi-io-streams */
export namespace WasiIoStreams {
  /** @module Interface wasi:io/streams@0.2.10 **/
  export type Error = WasiIoError.Error;
  export type Pollable = WasiIoPoll.Pollable;
  export type StreamError = StreamErrorLastOperationFailed | StreamErrorClosed;
  export interface StreamErrorLastOperationFailed {
    tag: 'last-operation-failed',
    val: Error,
  }
  export interface StreamErrorClosed {
    tag: 'closed',
  }

  export class InputStream {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    read(len: bigint): Uint8Array;
    blockingRead(len: bigint): Uint8Array;
    skip(len: bigint): bigint;
    blockingSkip(len: bigint): bigint;
    subscribe(): Pollable;
  }

  export class OutputStream {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    checkWrite(): bigint;
    write(contents: Uint8Array): void;
    blockingWriteAndFlush(contents: Uint8Array): void;
    flush(): void;
    blockingFlush(): void;
    subscribe(): Pollable;
    writeZeroes(len: bigint): void;
    blockingWriteZeroesAndFlush(len: bigint): void;
    splice(src: InputStream, len: bigint): bigint;
    blockingSplice(src: InputStream, len: bigint): bigint;
  }
}

/** wasi-logging-logging */
export namespace WasiLoggingLogging {
  /** @module Interface wasi:logging/logging@0.1.0-draft **/
  /**
   * Emits one log line. `context` names the part of the program it comes from (may be empty).
   */
  export function log(level: Level, context: string, message: string): void;
  /**
   * How important a log line is, from the least to the most.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   * 
   * ## `"critical"`
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical';
}
