// Runs jco and componentize-js in a child process. Three reasons it is not in the caller's:
// preview2-shim 0.26 starts with no filesystem preopens, so the toolchain (a component itself)
// cannot read WIT files until `_setPreopens` maps the host's filesystem in; doing that in a
// process that also runs capsules through preview2-shim would hand those capsules the whole
// filesystem. And componentize-js imports preview2-shim without declaring it as a dependency,
// so the resolve hook below points every copy at the one this package declares, which must not
// leak into the caller's module graph. And componentize-js runs wizer with the process's own
// stdout and stderr, which a worker thread does not have.
import { readdir, readFile } from 'node:fs/promises';
import { registerHooks } from 'node:module';
import { join } from 'node:path';

const shimParent = import.meta.url;
registerHooks({
  resolve(specifier, context, next) {
    if (specifier === '@bytecodealliance/preview2-shim' || specifier.startsWith('@bytecodealliance/preview2-shim/')) {
      return next(specifier, { ...context, parentURL: shimParent });
    }
    return next(specifier, context);
  },
});

const { _setPreopens } = await import('@bytecodealliance/preview2-shim/filesystem');
// The package's declarations describe the browser build (virtual file data); on Node.js the
// values are host paths.
(_setPreopens as unknown as (preopens: Record<string, string>) => void)({ '/': '/' });

export type ToolchainRequest =
  | { op: 'componentize'; sourcePath: string; witPath: string; worldName: string; disableFeatures: string[] }
  | { op: 'types'; witPath: string; worldName: string; guest: boolean }
  | { op: 'wit'; component: Uint8Array };

export type ToolchainResponse =
  | { ok: true; component?: Uint8Array; files?: Record<string, Uint8Array>; wit?: string }
  | { ok: false; message: string };

interface Splicer {
  spliceBindings(...args: unknown[]): { jsBindings: string };
}

/**
 * componentize-js makes the bindings' JavaScript with its splicer and hands it to the engine;
 * the splicer module is one object that componentize-js calls through, so wrapping its method
 * here thins every component this process makes (lean-bindings.ts says what and why).
 */
async function leanSplicer(interfaces: readonly string[]): Promise<void> {
  const url = new URL('../lib/spidermonkey-embedding-splicer.js', import.meta.resolve('@bytecodealliance/componentize-js'));
  const { splicer } = (await import(url.href)) as { splicer: Splicer };
  const splice = splicer.spliceBindings;
  if ((splice as { lean?: boolean }).lean) return;
  const { leanBindings } = await import('./lean-bindings.ts');
  const lean = (...args: unknown[]) => {
    const spliced = splice(...args);
    return { ...spliced, jsBindings: leanBindings(spliced.jsBindings, interfaces).code };
  };
  splicer.spliceBindings = Object.assign(lean, { lean: true });
}

/**
 * Every interface the WIT under `dir` declares, with its package's version
 * (`stratum:keyvalue/store@0.1.0`): the bindings name them mangled, and an error names them so.
 */
async function witInterfaces(dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.wit')) continue;
    const text = await readFile(join(entry.parentPath, entry.name), 'utf8');
    const pkg = /^package ([\w-]+:[\w-]+)(@[\w.+-]+)?;/m.exec(text);
    if (!pkg) continue;
    for (const match of text.matchAll(/^interface ([\w-]+)/gm)) names.push(`${pkg[1]}/${match[1]}${pkg[2] ?? ''}`);
  }
  return names;
}

async function run(request: ToolchainRequest): Promise<ToolchainResponse> {
  if (request.op === 'componentize') {
    await leanSplicer(await witInterfaces(request.witPath));
    const { componentize } = await import('@bytecodealliance/componentize-js');
    const { component } = await componentize({
      sourcePath: request.sourcePath,
      witPath: request.witPath,
      worldName: request.worldName,
      // The union type in componentize-js's declarations is narrower than the strings we pass on.
      disableFeatures: request.disableFeatures as ('stdio' | 'random' | 'clocks' | 'http' | 'fetch-event')[],
    });
    return { ok: true, component };
  }
  if (request.op === 'types') {
    const { types } = await import('@bytecodealliance/jco');
    const files = await types(request.witPath, { worldName: request.worldName, guest: request.guest, quiet: true });
    return { ok: true, files: files as Record<string, Uint8Array> };
  }
  const { componentWit } = await import('@bytecodealliance/jco');
  return { ok: true, wit: await componentWit(request.component) };
}

process.once('message', (request: ToolchainRequest) => {
  const reply = (response: ToolchainResponse) => process.send?.(response, () => process.disconnect());
  run(request).then(reply, (error: unknown) => reply({ ok: false, message: error instanceof Error ? error.message : String(error) }));
});
