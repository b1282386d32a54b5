/**
 * The thread that runs jco: reading a component's world and transpiling it block for up to a
 * few seconds on a 12 MB component, so they never run on the thread that serves requests.
 */
import { parentPort } from 'node:worker_threads';
import { componentWit, transpile } from '@bytecodealliance/jco';

export interface InspectJob {
  id: number;
  op: 'inspect';
  bytes: Uint8Array;
}

export interface TranspileJob {
  id: number;
  op: 'transpile';
  bytes: Uint8Array;
  asyncImports: string[];
  asyncExports: string[];
  importBindings: 'js' | 'hybrid';
}

export type TranspileWorkerJob = InspectJob | TranspileJob;

export interface ComponentWorld {
  /** Interfaces imported, versioned (`wasi:http/types@0.2.10`); inline items as `<name>`. */
  imports: string[];
  exports: string[];
}

export type TranspileWorkerReply =
  | { id: number; ok: true; world: ComponentWorld }
  | { id: number; ok: true; files: Record<string, Uint8Array> }
  | { id: number; ok: false; message: string };

/** Reads the world's top-level `import x;` / `export x;` lines from `jco wit` output. */
export function worldOf(wit: string): ComponentWorld {
  const world: ComponentWorld = { imports: [], exports: [] };
  for (const line of wit.split('\n')) {
    const match = /^\s*(import|export)\s+([^;{]+?)\s*(;|\{)?\s*$/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    const item = match[2];
    const colon = item.indexOf(': ');
    const name = colon === -1 ? item : `<${item.slice(0, colon)}>`;
    (match[1] === 'import' ? world.imports : world.exports).push(name);
  }
  return world;
}

async function run(job: TranspileWorkerJob): Promise<TranspileWorkerReply> {
  if (job.op === 'inspect') return { id: job.id, ok: true, world: worldOf(await componentWit(job.bytes)) };
  const jspi = job.asyncImports.length > 0;
  const result = await transpile(job.bytes, {
    name: 'capsule',
    instantiation: 'async',
    noTypescript: true,
    quiet: true,
    importBindings: job.importBindings,
    ...(jspi ? { asyncMode: 'jspi' as const, asyncImports: job.asyncImports, asyncExports: job.asyncExports } : {}),
  });
  const files: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(result.files)) if (!name.includes('/') && !name.endsWith('.d.ts')) files[name] = bytes;
  return { id: job.id, ok: true, files };
}

parentPort?.on('message', (job: TranspileWorkerJob) => {
  run(job).then(
    (reply) => parentPort?.postMessage(reply),
    (error: unknown) => parentPort?.postMessage({ id: job.id, ok: false, message: error instanceof Error ? error.message : String(error) }),
  );
});
