import { buildExample } from '/work/main/tests/support/examples.ts';

console.log(await buildExample('hello'));
