import type { Capsule } from '@stratum/sdk';

let served = 0;

export default {
  async fetch(request) {
    served += 1;
    const url = new URL(request.url);
    if (url.pathname === '/echo' && request.method === 'POST') {
      const body = await request.text();
      return new Response(body, { headers: { 'content-type': request.headers.get('content-type') ?? 'text/plain' } });
    }
    const name = url.searchParams.get('name') ?? 'world';
    return Response.json({ message: `hello, ${name}`, path: url.pathname, served });
  },
} satisfies Capsule;
