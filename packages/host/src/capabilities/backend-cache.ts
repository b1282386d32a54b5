/**
 * The backends a capability's instances share inside one worker: one per distinct configuration,
 * made on first use and closed together at shutdown. A backend is made by an asynchronous factory
 * so that a backend's client library (ioredis, the NATS client, postgres, the AWS SDK: together
 * over half a second to load) is imported only by a host or worker that uses it.
 */
export class BackendCache<Backend extends { close(): Promise<void> }> {
  readonly #backends = new Map<string, Promise<Backend>>();

  get(identity: string, create: () => Promise<Backend>): Promise<Backend> {
    let backend = this.#backends.get(identity);
    if (!backend) {
      backend = create();
      this.#backends.set(identity, backend);
      // A failed start is not kept: the next instance tries again.
      backend.catch(() => this.#backends.delete(identity));
    }
    return backend;
  }

  async closeAll(): Promise<void> {
    const open = [...this.#backends.values()];
    this.#backends.clear();
    await Promise.all(open.map(async (backend) => (await backend.catch(() => undefined))?.close()));
  }
}
