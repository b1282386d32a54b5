// JS Promise Integration (Node.js 24), which TypeScript's libraries do not declare yet.
declare global {
  namespace WebAssembly {
    class Suspending {
      constructor(fn: (...args: never[]) => Promise<unknown>);
    }
    function promising<F extends (...args: never[]) => unknown>(fn: F): (...args: Parameters<F>) => Promise<ReturnType<F>>;
  }
}

export {};
