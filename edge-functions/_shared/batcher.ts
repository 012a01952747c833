// Coalesces concurrent calls into batches: a call runs at once while fewer than `maxInFlight`
// batches are running; calls that arrive meanwhile wait and go together as the next batch
// (at most `maxBatch`). So a lone call pays no wait, and under load the database sees one
// statement per batch instead of one per call.
//
// Calls carry a key, and batches running at the same time never share one: a call whose key is
// in a running batch waits for that batch to end. When each key owns the rows its calls lock
// (a prekey fetch's rate-limit buckets belong to its caller), two concurrent batches never wait
// for each other's rows, so they cannot deadlock whatever order they lock them in.

type Pending<In, Out> = {
  item: In;
  key: string;
  resolve: (out: Out) => void;
  reject: (error: unknown) => void;
};

export type BatcherOptions<In> = {
  maxInFlight: number;
  maxBatch: number;
  keyOf: (item: In) => string;
};

export class Batcher<In, Out> {
  readonly #run: (items: In[]) => Promise<Out[]>;
  readonly #options: BatcherOptions<In>;
  #queue: Pending<In, Out>[] = [];
  #inFlight = 0;
  /** Keys of the calls in running batches. */
  readonly #running = new Set<string>();

  /** `run` answers one result per item, in order; if it throws, every item of the batch does. */
  constructor(run: (items: In[]) => Promise<Out[]>, options: BatcherOptions<In>) {
    if (!(options.maxInFlight >= 1 && options.maxBatch >= 1)) {
      throw new RangeError("batcher limits must be >= 1");
    }
    this.#run = run;
    this.#options = options;
  }

  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.#queue.push({ item, key: this.#options.keyOf(item), resolve, reject });
      this.#drain();
    });
  }

  #drain(): void {
    while (this.#inFlight < this.#options.maxInFlight) {
      const batch = this.#take();
      if (batch.length === 0) return;
      const keys = new Set(batch.map((pending) => pending.key));
      for (const key of keys) this.#running.add(key);
      this.#inFlight++;
      this.#execute(batch).finally(() => {
        for (const key of keys) this.#running.delete(key);
        this.#inFlight--;
        this.#drain();
      });
    }
  }

  /** The next batch: waiting calls in arrival order whose keys no running batch holds. */
  #take(): Pending<In, Out>[] {
    const batch: Pending<In, Out>[] = [];
    const rest: Pending<In, Out>[] = [];
    for (const pending of this.#queue) {
      if (batch.length < this.#options.maxBatch && !this.#running.has(pending.key)) {
        batch.push(pending);
      } else {
        rest.push(pending);
      }
    }
    this.#queue = rest;
    return batch;
  }

  async #execute(batch: Pending<In, Out>[]): Promise<void> {
    try {
      const outs = await this.#run(batch.map((pending) => pending.item));
      if (outs.length !== batch.length) {
        throw new Error(`batch answered ${outs.length} results for ${batch.length} items`);
      }
      batch.forEach((pending, i) => pending.resolve(outs[i]));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }
}
