// stratum dev's 500 page shows what was thrown, for the developer's browser, as wrangler does;
// config values the capsule read stay out of it (the page may travel through a tunnel, and the
// capsule cannot tell a secret from another value), while the terminal's log masks secrets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serveJsProject } from './support/js-project.ts';

test("dev's 500 page names what was thrown without the config values it carries; the log masks the secret", async (t) => {
  const source = `import { requireConfig } from '@stratum/sdk/config';
export default { fetch() { throw new Error('bad token ' + requireConfig('api_token') + ' for ' + requireConfig('region')); } };
`;
  const { runtime, get } = await serveJsProject(t, {
    name: 'leaky',
    source,
    manifest: '[capabilities.config.api_token]\nsecret = true\nrequired = true\n[capabilities.config.region]\ndefault = "europe-west"\n',
    config: { api_token: 's3cr3t-Token-XYZ' },
  });
  const logs: string[] = [];
  runtime.subscribeLogs('leaky', (entry) => logs.push(entry.message));
  const answer = await get('/');
  assert.equal(answer.status, 500);
  assert.match(answer.body, /^Internal Server Error: Error: bad token \[a config value\] for \[a config value\]\n/);
  assert.doesNotMatch(answer.body, /s3cr3t|europe-west/);
  for (let tries = 0; tries < 500 && !logs.some((line) => line.includes('bad token')); tries++)
    await new Promise((resolve) => setTimeout(resolve, 10));
  const logged = logs.find((line) => line.includes('bad token')) ?? '';
  assert.match(logged, /bad token \[secret\] for europe-west/);
});
