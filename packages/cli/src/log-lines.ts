import type { CapsuleLogEntry } from '@stratum/host';

/** The lines of one millisecond remembered to tell a backlog sent again from new lines. */
const MAX_REMEMBERED = 10_000;

/** One log stream of `host logs`: which of its lines to print. */
export interface LogStream {
  /** Whether to print this line (with its id, if the host gives one): false for one an earlier stream printed. */
  admit(entry: CapsuleLogEntry, id?: string): boolean;
  /** The stream's backlog is all sent (its `live` event): every line after it is new. */
  live(): void;
}

/**
 * What `host logs --follow` prints of the streams it opens in turn (spec/host-api.md section
 * 5.8): every line of one stream, which the host sends once each, repeated lines too; and of a
 * stream opened again, only what its backlog holds that no earlier stream printed.
 *
 * A host that gives each line an id is asked for a stream's backlog after the last one printed
 * (`lastId`, sent as `Last-Event-ID`), and sends only new lines: a line with an id is printed.
 *
 * A host that gives none sends its backlog whole, its lines in the order it keeps them: the
 * lines printed before are told apart by time. In a backlog sent again, the lines older than the
 * last one printed were printed; so were the first lines of its millisecond, as many as were
 * printed with that time, and the same lines in the same order; whatever comes after them is new.
 * That is exact while the host's clock does not go back and it still keeps that millisecond's lines.
 *
 * @example
 * const lines = new LogLines();
 * const stream = lines.stream(); // for each stream opened
 * await client.logs(name, (entry, id) => stream.admit(entry, id) && print(entry), { lastEventId: lines.lastId, onLive: () => stream.live() });
 */
export class LogLines {
  /** The id of the last line printed, if the host gave it one. */
  lastId: string | undefined;
  /** The time of the last line printed. */
  #time = '';
  /** The lines printed with that time, in order, as JSON. */
  #atTime: string[] = [];

  stream(): LogStream {
    const time = this.#time;
    const printed = [...this.#atTime];
    let matched = 0;
    // A first stream has nothing to leave out.
    let replaying = time !== '';
    return {
      admit: (entry, id) => {
        if (id !== undefined) {
          // After the line of `lastId`, or of a host process before this one's: new.
          this.lastId = id;
          replaying = false;
        }
        if (replaying) {
          if (entry.time < time) return false;
          if (entry.time === time && matched < printed.length && JSON.stringify(entry) === printed[matched]) {
            matched++;
            return false;
          }
          replaying = false;
        }
        this.#printed(entry);
        return true;
      },
      live: () => {
        replaying = false;
      },
    };
  }

  #printed(entry: CapsuleLogEntry): void {
    const key = JSON.stringify(entry);
    if (entry.time !== this.#time) {
      this.#time = entry.time;
      this.#atTime = [key];
    } else if (this.#atTime.length < MAX_REMEMBERED) this.#atTime.push(key);
  }
}
