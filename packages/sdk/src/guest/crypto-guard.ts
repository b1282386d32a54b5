// StarlingMonkey, as componentize-js 0.23 builds it, aborts the whole instance (a WebAssembly
// trap, no exception) when `crypto.subtle.importKey` is given an ECDSA or RSASSA-PKCS1-v1_5 key,
// in any format; the other algorithms it lacks are refused with a NotSupportedError. A JWT
// library verifying ES256 or RS256 would take its instance down on every request, and a host
// backs off a capsule that keeps failing. So those two are refused the same way, as an error the
// capsule can catch. Imported for this effect by globals.ts. Drop it once the engine can.

const TRAPPING = new Set(['ECDSA', 'RSASSA-PKCS1-V1_5']);

const subtle = globalThis.crypto?.subtle;
if (subtle) {
  const platformImportKey = subtle.importKey.bind(subtle);
  // The overloads of importKey (JWK or bytes) are one function at run time.
  const importKey = async (...args: Parameters<typeof platformImportKey>): ReturnType<typeof platformImportKey> => {
    const algorithm = args[2];
    const name = (typeof algorithm === 'string' ? algorithm : (algorithm?.name ?? '')).toUpperCase();
    if (TRAPPING.has(name)) {
      throw new DOMException(
        `${name} keys cannot be imported in a capsule: the JavaScript engine (StarlingMonkey) would abort the instance; HMAC, digests and random values work`,
        'NotSupportedError',
      );
    }
    return platformImportKey(...args);
  };
  Object.defineProperty(subtle, 'importKey', { configurable: true, writable: true, value: importKey });
}
