import type { Capsule } from '@stratum/sdk';
import { openBucket } from '@stratum/sdk/bucket';

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/svg+xml']);
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// GET    /                the gallery as an HTML page
// GET    /images          the images as JSON
// PUT    /images/<name>   stores the body (Content-Type must be an image type)
// GET    /images/<name>   the image (supports Range: bytes=a-b)
// DELETE /images/<name>   removes it
export default {
  async fetch(request) {
    const images = openBucket('images');
    const url = new URL(request.url);
    if (url.pathname === '/' && request.method === 'GET') {
      const { objects } = images.list({ limit: 100 });
      const items = objects.map(
        (o) =>
          `<li><a href="/images/${encodeURIComponent(o.name)}"><img src="/images/${encodeURIComponent(o.name)}" alt="${escapeHtml(o.name)}" width="160"></a></li>`,
      );
      return new Response(`<!doctype html><title>Gallery</title><h1>Gallery</h1><ul>${items.join('')}</ul>`, {
        headers: { 'content-type': 'text/html; charset=utf-8' },
      });
    }
    if (url.pathname === '/images' && request.method === 'GET') {
      const { objects, cursor } = images.list({ ...(url.searchParams.get('cursor') ? { cursor: url.searchParams.get('cursor')! } : {}) });
      return Response.json({
        images: objects.map((o) => ({ name: o.name, size: o.size, type: o.contentType, etag: o.etag })),
        cursor: cursor ?? null,
      });
    }
    const name = decodeURIComponent(url.pathname.replace(/^\/images\//, ''));
    if (!url.pathname.startsWith('/images/') || !NAME.test(name)) return new Response('not found', { status: 404 });

    if (request.method === 'PUT') {
      const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (!IMAGE_TYPES.has(type)) return new Response(`Content-Type must be one of ${[...IMAGE_TYPES].join(', ')}`, { status: 415 });
      const length = Number(request.headers.get('content-length') ?? '0');
      if (length > MAX_IMAGE_BYTES) return new Response('image too large', { status: 413 });
      if (!request.body) return new Response('empty body', { status: 400 });
      const stored = await images.put(name, request.body, { contentType: type });
      return Response.json({ name: stored.name, size: stored.size, etag: stored.etag }, { status: 201 });
    }
    if (request.method === 'DELETE') {
      images.delete(name);
      return new Response(null, { status: 204 });
    }
    if (request.method === 'GET' || request.method === 'HEAD') {
      const range = /^bytes=([0-9]+)-([0-9]*)$/.exec(request.headers.get('range') ?? '');
      const offset = range ? Number(range[1]) : 0;
      const length = range?.[2] ? Number(range[2]) - offset + 1 : undefined;
      const head = images.head(name);
      if (!head) return new Response('not found', { status: 404 });
      if (head.etag === request.headers.get('if-none-match')) return new Response(null, { status: 304, headers: { etag: head.etag } });
      if (range && (offset >= head.size || (length !== undefined && length <= 0))) {
        return new Response(null, { status: 416, headers: { 'content-range': `bytes */${head.size}` } });
      }
      const object = images.get(name, range ? { range: { offset, ...(length !== undefined ? { length } : {}) } } : {});
      if (!object) return new Response('not found', { status: 404 });
      const end = length === undefined ? object.info.size - 1 : Math.min(object.info.size - 1, offset + length - 1);
      const headers: Record<string, string> = {
        'content-type': object.info.contentType ?? 'application/octet-stream',
        etag: object.info.etag,
        'accept-ranges': 'bytes',
        'content-length': String(end - offset + 1),
      };
      if (range) headers['content-range'] = `bytes ${offset}-${end}/${object.info.size}`;
      return new Response(object.body, { status: range ? 206 : 200, headers });
    }
    return new Response('method not allowed', { status: 405 });
  },
} satisfies Capsule;
