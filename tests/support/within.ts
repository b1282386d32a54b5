/**
 * Rejects if `work` has not settled within `ms`: for a test of a wait that must end (a lock, a
 * login a client library would retry for ever), so that it fails instead of hanging. Not a
 * measure of speed: `ms` is far past what the work takes.
 */
export function within<T>(ms: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
