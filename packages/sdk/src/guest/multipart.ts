// A multipart/form-data body read into a FormData, as the Fetch standard's formData() reads one
// (RFC 7578): a part with a filename becomes a File of the part's exact bytes (its Content-Type,
// else text/plain), any other part its text, decoded as UTF-8. form-data.ts puts it in place of
// StarlingMonkey's, which garbled every file.

// UTF-8 with replacement, without a byte order mark, as the standard decodes a field.
const decoder = new TextDecoder();

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const SPACE = 0x20;
const TAB = 0x09;

/**
 * The boundary of a `multipart/form-data` Content-Type; null for another type, undefined if it
 * names none. A boundary is ASCII (RFC 2046), which the search in `finder` relies on.
 */
export function multipartBoundary(contentType: string | null): string | null | undefined {
  if (contentType === null) return null;
  const semicolon = contentType.indexOf(';');
  const essence = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (essence !== 'multipart/form-data') return null;
  const match = /;\s*boundary\s*=\s*(?:"([\x20\x21\x23-\x7e]+)"|([\x21\x23-\x3a\x3c-\x7e]+))/i.exec(contentType);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** `body`, a multipart/form-data body with `boundary`, as a FormData; a TypeError if it is not one. */
export function parseMultipart(body: Uint8Array, boundary: string): FormData {
  const find = finder(body);
  const dashBoundary = `--${boundary}`;
  const delimiter = `\r\n--${boundary}`;
  const form = new FormData();
  // The first boundary opens the body, or ends a preamble, which is ignored.
  let position: number;
  if (find(dashBoundary, 0) === 0) {
    position = dashBoundary.length;
  } else {
    const first = find(delimiter, 0);
    if (first === -1) throw malformed(`it has no boundary "${boundary}"`);
    position = first + delimiter.length;
  }
  for (;;) {
    // After a boundary: "--" closes the body (an epilogue is ignored), else a line break opens a part.
    if (body[position] === DASH && body[position + 1] === DASH) return form;
    while (body[position] === SPACE || body[position] === TAB) position++;
    if (body[position] !== CR || body[position + 1] !== LF) throw malformed('a boundary is not followed by a line break or "--"');
    position += 2;
    const headersEnd = find('\r\n\r\n', position);
    if (headersEnd === -1) throw malformed("a part's headers do not end with an empty line");
    const headers = decoder.decode(body.subarray(position, headersEnd));
    position = headersEnd + 4;
    const end = find(delimiter, position);
    if (end === -1) throw malformed(`a part is not closed by the boundary "${boundary}"`);
    appendPart(form, headers, body.subarray(position, end));
    position = end + delimiter.length;
  }
}

function appendPart(form: FormData, headers: string, content: Uint8Array): void {
  let name: string | undefined;
  let filename: string | undefined;
  let type: string | undefined;
  for (const line of headers.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const field = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (field === 'content-type') {
      type = value;
    } else if (field === 'content-disposition') {
      const params = dispositionParams(value);
      name = params.get('name');
      filename = params.get('filename');
    }
  }
  if (name === undefined) throw malformed('a part has no Content-Disposition with a name');
  if (filename === undefined) form.append(name, decoder.decode(content));
  else form.append(name, new File([content], filename, { type: type || 'text/plain' }));
}

/** The parameters of `form-data; name="a"; filename="b.txt"`, names lower-cased. */
function dispositionParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  // A quoted value may hold `\"` and `\\` (curl writes them so); browsers percent-encode a quote.
  const param = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let match = param.exec(value); match !== null; match = param.exec(value)) {
    const key = (match[1] as string).toLowerCase();
    if (params.has(key)) continue;
    const quoted = match[2];
    params.set(key, quoted !== undefined ? quoted.replace(/\\(["\\])/g, '$1') : (match[3] as string).trim());
  }
  return params;
}

function malformed(why: string): TypeError {
  return new TypeError(`formData(): the multipart/form-data body cannot be read: ${why}`);
}

/**
 * Where an ASCII string (a delimiter, the end of the headers) first occurs in `body` from an
 * offset, or -1. The engine's indexOf finds each place the string's first byte is, and a look at
 * its last byte rules out nearly all of them before the rest is compared: the capsule's own loops
 * are what cost. In a warm dev engine, formData() of a 700 KB body, 280 KB of it a CSV (a CR every
 * 7 bytes), took about 15 ms with its arrayBuffer(); decoding that body as windows-1252, to search
 * it as a string, took 12 ms alone.
 */
function finder(body: Uint8Array): (ascii: string, from: number) => number {
  return (ascii, from) => {
    const needle = Uint8Array.from(ascii, (char) => char.charCodeAt(0));
    const first = needle[0] as number;
    const lastOffset = needle.length - 1;
    const lastByte = needle[lastOffset];
    const end = body.length - needle.length;
    for (let at = body.indexOf(first, from); at !== -1 && at <= end; at = body.indexOf(first, at + 1)) {
      if (body[at + lastOffset] !== lastByte) continue;
      let i = 1;
      while (i < lastOffset && body[at + i] === needle[i]) i++;
      if (i >= lastOffset) return at;
    }
    return -1;
  };
}
