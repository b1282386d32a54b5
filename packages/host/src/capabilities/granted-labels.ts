/**
 * A guest that opens a label its manifest does not grant gets the interface's bare error case
 * (`no-such-store`): the WIT variant carries no text. The capsule's log says what it could have
 * opened, which is what the capsule's author needs to fix either the code or the manifest.
 *
 * @example
 * notGranted('keyvalue', 'keyvalue stores', 'no-such-store', 'default', ['other']);
 * // keyvalue open("default") refused (no-such-store): the manifest grants keyvalue stores "other" only
 */
export function notGranted(capability: string, what: string, variant: string, label: string, granted: Iterable<string>): string {
  const labels = [...granted].map((one) => JSON.stringify(one));
  const grants = labels.length === 0 ? `the manifest grants no ${what}` : `the manifest grants ${what} ${labels.join(', ')} only`;
  return `${capability} open(${JSON.stringify(label)}) refused (${variant}): ${grants}`;
}
