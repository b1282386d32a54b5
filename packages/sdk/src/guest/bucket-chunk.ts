// Apart from bucket.ts, which imports the host's interface and so loads only inside a capsule:
// the tests hold the SDK to it from Node.js.

/**
 * How much one call moves: the most every host accepts (spec/wit/README.md), so that a large
 * object streams through in few calls while the instance holds one piece at a time. Each call
 * is a request to an S3 backend: at 256 KiB a 7 MiB read cost the host twice the CPU.
 */
export const CHUNK_BYTES = 1024 * 1024;
