// StarlingMonkey's URL lacks the URL standard's static `canParse` and `parse`, which code now
// uses instead of a try around `new URL`. Imported for this effect by globals.ts.

const URLStatics = URL as typeof URL & { canParse?: unknown; parse?: unknown };

if (typeof URLStatics.parse !== 'function') {
  Object.defineProperty(URL, 'parse', {
    writable: true,
    configurable: true,
    value: function parse(url: string | URL, base?: string | URL): URL | null {
      try {
        return new URL(url, base);
      } catch {
        return null;
      }
    },
  });
}

if (typeof URLStatics.canParse !== 'function') {
  Object.defineProperty(URL, 'canParse', {
    writable: true,
    configurable: true,
    value: function canParse(url: string | URL, base?: string | URL): boolean {
      try {
        new URL(url, base);
        return true;
      } catch {
        return false;
      }
    },
  });
}
