/**
 * The thread that checks host.toml's backends (backend-check.ts): it loads the client libraries
 * the checks need, so the thread that serves requests does not, and reports each table's outcome.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type BackendSections, backendChecks, runBackendChecks } from './backend-check.ts';

const { sections, timeoutMs } = workerData as { sections: BackendSections; timeoutMs: number };
await runBackendChecks(backendChecks(sections), timeoutMs, (result) => parentPort?.postMessage(result));
