/**
 * `redis://:secret@host/0` -> `redis://:***@host/0`, and any `secret`, `password`, `token` or
 * `key` query parameter too: a backend's URL as a terminal, a log or an error may show it. Text
 * that is not a URL is returned as it is.
 */
export function redactUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  if (url.password) url.password = '***';
  for (const key of [...url.searchParams.keys()]) if (/secret|password|token|key/i.test(key)) url.searchParams.set(key, '***');
  return url.toString();
}
