// The overhead suite's floor for a JavaScript capsule: examples/hello's answer made on
// wasi:http/types directly, with no Request, Headers or Response objects and no SDK, so that
// what it costs is StarlingMonkey, jco's glue and the host. bench/lib/components.ts builds it
// with componentize-js as `stratum build` does (a capsule's code is always given the Fetch API).
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.10';

const encoder = new TextEncoder();
const contentType = encoder.encode('application/json');
let served = 0;

export const incomingHandler = {
  handle(request, outparam) {
    served += 1;
    const pathWithQuery = request.pathWithQuery() ?? '/';
    const at = pathWithQuery.indexOf('?');
    const path = at === -1 ? pathWithQuery : pathWithQuery.slice(0, at);
    const body = encoder.encode(JSON.stringify({ message: 'hello, world', path, served }));
    const response = new OutgoingResponse(Fields.fromList([['content-type', contentType]]));
    response.setStatusCode(200);
    const outgoing = response.body();
    ResponseOutparam.set(outparam, { tag: 'ok', val: response });
    const stream = outgoing.write();
    stream.blockingWriteAndFlush(body);
    stream[Symbol.dispose]();
    OutgoingBody.finish(outgoing, undefined);
    request[Symbol.dispose]();
  },
};
