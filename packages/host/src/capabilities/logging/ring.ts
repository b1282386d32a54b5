/**
 * A bounded ring of log entries with subscribers: the newest `capacity` entries are kept
 * (older ones are overwritten, in O(1)), and a subscriber gets a backlog and then every new
 * entry until it unsubscribes. One ring per capsule.
 *
 * @example
 * const ring = new LogRing<CapsuleLogEntry>(1000);
 * const stop = ring.subscribe((entry) => send(entry), { backlog: 100 });
 */
export class LogRing<Entry> {
  readonly capacity: number;
  readonly #entries: (Entry | undefined)[];
  #next = 0;
  #size = 0;
  /** Entries dropped to make room, since the ring was made. */
  dropped = 0;
  readonly #listeners = new Set<(entry: Entry) => void>();

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`a log ring needs a positive capacity, not ${capacity}`);
    this.capacity = capacity;
    this.#entries = new Array(capacity);
  }

  push(entry: Entry): void {
    if (this.#size === this.capacity) this.dropped++;
    else this.#size++;
    this.#entries[this.#next] = entry;
    this.#next = (this.#next + 1) % this.capacity;
    for (const listener of this.#listeners) listener(entry);
  }

  /** The newest `count` entries (all by default), oldest first. */
  recent(count = this.#size): Entry[] {
    const take = Math.max(0, Math.min(count, this.#size));
    const out: Entry[] = [];
    for (let i = take; i > 0; i--) out.push(this.#entries[(this.#next - i + this.capacity) % this.capacity] as Entry);
    return out;
  }

  get size(): number {
    return this.#size;
  }

  /** Replays up to `backlog` recent entries (default all kept), then follows new ones. */
  subscribe(listener: (entry: Entry) => void, options: { backlog?: number } = {}): () => void {
    for (const entry of this.recent(options.backlog)) listener(entry);
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
