// The SDK's changes to the engine's globals, each explained in its module. The entry that
// `stratum build` and `stratum dev` bundle imports this module before the capsule's, so they are
// in place for the capsule's top-level code and the libraries it loads, not only for requests.
// webcrypto.ts is one of them, imported after this module only for code that uses crypto.subtle
// (see `bundle` in build/build.ts).
import './abort-reasons.ts';
import './body-text.ts';
import './console-errors.ts';
import './fetch-errors.ts';
import './fetch-redirects.ts';
import './form-data.ts';
import './message-channel.ts';
import './performance.ts';
import './response-clone.ts';
import './response-text.ts';
import './streams.ts';
import './timers.ts';
import './url-parse.ts';
