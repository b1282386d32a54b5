import type { Capsule } from '@stratum/sdk';
import { openKeyValue } from '@stratum/sdk/keyvalue';

// GET /<path>     counts one hit on <path> and returns the count
// GET /_counts    every path's count, without counting
// DELETE /<path>  resets <path>
export default {
  fetch(request) {
    const kv = openKeyValue('default');
    const path = new URL(request.url).pathname;
    if (path === '/_counts') {
      const keys = [...kv.keys()].filter((key) => key.startsWith('hits:'));
      const counts: Record<string, number> = {};
      for (const [key, value] of kv.getMany(keys)) counts[key.slice('hits:'.length)] = Number(new TextDecoder().decode(value));
      return Response.json(counts);
    }
    if (request.method === 'DELETE') {
      kv.delete(`hits:${path}`);
      return new Response(null, { status: 204 });
    }
    if (request.method !== 'GET') return new Response('method not allowed', { status: 405, headers: { allow: 'GET, DELETE' } });
    // increment is atomic in the host, so concurrent requests never lose a count.
    const count = kv.increment(`hits:${path}`);
    return Response.json({ path, count });
  },
} satisfies Capsule;
