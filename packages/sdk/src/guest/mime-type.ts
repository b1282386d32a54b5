// The type of a body's Blob, as the Fetch standard gives `blob()` it: the MIME type extracted from
// the Content-Type header, serialized, then lower-cased as a Blob's type is (File API). Apart
// from body-text.ts, which gives it to Request and Response, so that Node.js tests run it against
// Node.js's own `blob()`.

interface MimeType {
  type: string;
  subtype: string;
  parameters: Map<string, string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const QUOTED_STRING_TOKEN = /^[\t\u0020-\u007e\u0080-\u00ff]*$/;
const HTTP_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;
const TRAILING_WHITESPACE = /[\t\n\r ]+$/;
const TAB_OR_SPACE = /^[\t ]+|[\t ]+$/g;

/** A position in `input`, and the WHATWG Infra steps that move it. */
class Cursor {
  readonly input: string;
  position = 0;
  constructor(input: string) {
    this.input = input;
  }
  get done(): boolean {
    return this.position >= this.input.length;
  }
  get char(): string {
    return this.input.charAt(this.position);
  }
  /** Collects the code points up to one of `stops` (or the end). */
  until(stops: string): string {
    const start = this.position;
    while (!this.done && !stops.includes(this.char)) this.position++;
    return this.input.slice(start, this.position);
  }
  skipWhitespace(): void {
    while (!this.done && '\t\n\r '.includes(this.char)) this.position++;
  }
  /** Fetch's "collect an HTTP quoted string", at a `"`: the value, or the quoted text as written. */
  quoted(extractValue: boolean): string {
    const start = this.position;
    let value = '';
    this.position++;
    for (;;) {
      value += this.until('"\\');
      if (this.done) break;
      const quoteOrBackslash = this.char;
      this.position++;
      if (quoteOrBackslash === '\\') {
        if (this.done) {
          value += '\\';
          break;
        }
        value += this.char;
        this.position++;
      } else {
        break;
      }
    }
    return extractValue ? value : this.input.slice(start, this.position);
  }
}

/** Fetch's "get, decode, and split" of a header value (as `Headers.get` gives it, joined with ", "). */
function splitValues(value: string): string[] {
  const cursor = new Cursor(value);
  const values: string[] = [];
  let temporary = '';
  for (;;) {
    temporary += cursor.until('",');
    if (!cursor.done && cursor.char === '"') {
      temporary += cursor.quoted(false);
      if (!cursor.done) continue;
    }
    values.push(temporary.replace(TAB_OR_SPACE, ''));
    temporary = '';
    if (cursor.done) return values;
    cursor.position++;
  }
}

/** MIME Sniffing's "parse a MIME type". */
function parseMimeType(text: string): MimeType | undefined {
  const cursor = new Cursor(text.replace(HTTP_WHITESPACE, ''));
  const type = cursor.until('/');
  if (!TOKEN.test(type) || cursor.done) return undefined;
  cursor.position++;
  const subtype = cursor.until(';').replace(TRAILING_WHITESPACE, '');
  if (!TOKEN.test(subtype)) return undefined;
  const parsed: MimeType = { type: type.toLowerCase(), subtype: subtype.toLowerCase(), parameters: new Map() };
  while (!cursor.done) {
    cursor.position++;
    cursor.skipWhitespace();
    const name = cursor.until(';=').toLowerCase();
    if (!cursor.done) {
      if (cursor.char === ';') continue;
      cursor.position++;
    }
    if (cursor.done) break;
    let value: string;
    if (cursor.char === '"') {
      value = cursor.quoted(true);
      cursor.until(';');
    } else {
      value = cursor.until(';').replace(TRAILING_WHITESPACE, '');
      if (value === '') continue;
    }
    if (TOKEN.test(name) && QUOTED_STRING_TOKEN.test(value) && !parsed.parameters.has(name)) parsed.parameters.set(name, value);
  }
  return parsed;
}

/** Fetch's "extract a MIME type" from a Content-Type value: the last valid one, a charset carried over from one before it of the same essence. */
function extractMimeType(contentType: string): MimeType | undefined {
  let charset: string | undefined;
  let essence: string | undefined;
  let found: MimeType | undefined;
  for (const value of splitValues(contentType)) {
    const parsed = parseMimeType(value);
    if (parsed === undefined || (parsed.type === '*' && parsed.subtype === '*')) continue;
    found = parsed;
    const parsedEssence = `${parsed.type}/${parsed.subtype}`;
    if (parsedEssence !== essence) {
      charset = parsed.parameters.get('charset');
      essence = parsedEssence;
    } else if (!parsed.parameters.has('charset') && charset !== undefined) {
      parsed.parameters.set('charset', charset);
    }
  }
  return found;
}

/** MIME Sniffing's "serialize a MIME type". */
function serializeMimeType(mime: MimeType): string {
  let text = `${mime.type}/${mime.subtype}`;
  for (const [name, value] of mime.parameters) {
    text += `;${name}=${TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`}`;
  }
  return text;
}

/** The `type` of the Blob that `blob()` gives for a body with this Content-Type (null: none). */
export function blobType(contentType: string | null): string {
  const mime = contentType === null ? undefined : extractMimeType(contentType);
  if (mime === undefined) return '';
  const type = serializeMimeType(mime);
  // As the Blob constructor takes a type: none unless printable ASCII, and lower-cased.
  return /^[\u0020-\u007e]*$/.test(type) ? type.toLowerCase() : '';
}
