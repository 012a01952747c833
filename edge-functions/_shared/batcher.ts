// Coalesces concurrent calls into batches: a call runs at once while fewer than `maxInFlight`
// batches are running; calls that arrive meanwhile wait and go together as the next batch
// (at most `maxBatch`). So a lone call pays no wait, and under load the database sees one
// statement per batch instead of one per call.
//
// Calls carry a key, and a key is in at most one call of all the running batches: a call whose
// key is in a running batch, or already in the batch being formed, waits for a later batch.
// When each key owns the rows its calls write (a prekey fetch's rate-limit buckets belong to its
// caller), concurrent batches never wait for each other's rows, and one statement writes each
// such row at most once.
//
// Under load, batches would otherwise alternate between two halves of the callers: a batch is
// taken the moment the previous one ends, before its callers have had their answers and come
// back. With `lingerMs`, the batch after a batch of several calls waits up to that long for as
// many new calls as that batch answered (at most `maxBatch` waiting in all), so the fixed cost
// of a batch is shared by more calls. A lone call never waits: linger follows only a batch of
// two or more.

type Pending<In, Out> = {
  item: In;
  key: string;
  distinct: string | null;
  resolve: (out: Out) => void;
  reject: (error: unknown) => void;
};

export type BatcherOptions<In> = {
  maxInFlight: number;
  maxBatch: number;
  keyOf: (item: In) => string;
  /** Calls that share this key go in different batches (running batches may share it). */
  distinctOf?: (item: In) => string;
  /** After a batch of two or more calls, how long the next batch may wait to fill (default 0). */
  lingerMs?: number;
};

export class Batcher<In, Out> {
  readonly #run: (items: In[]) => Promise<Out[]>;
  readonly #options: BatcherOptions<In>;
  #queue: Pending<In, Out>[] = [];
  #inFlight = 0;
  /** Keys of the calls in running batches. */
  readonly #running = new Set<string>();
  /** Set while the next batch waits to fill, until `#lingerFor` calls are waiting. */
  #linger: ReturnType<typeof setTimeout> | null = null;
  #lingerFor = 0;

  /** `run` answers one result per item, in order; if it throws, every item of the batch does. */
  constructor(run: (items: In[]) => Promise<Out[]>, options: BatcherOptions<In>) {
    if (!(options.maxInFlight >= 1 && options.maxBatch >= 1 && (options.lingerMs ?? 0) >= 0)) {
      throw new RangeError("batcher limits must be >= 1 and the linger >= 0");
    }
    this.#run = run;
    this.#options = options;
  }

  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.#queue.push({
        item,
        key: this.#options.keyOf(item),
        distinct: this.#options.distinctOf?.(item) ?? null,
        resolve,
        reject,
      });
      this.#drain();
    });
  }

  #drain(): void {
    while (this.#inFlight < this.#options.maxInFlight) {
      if (this.#linger !== null) {
        if (this.#queue.length < this.#lingerFor) return;
        clearTimeout(this.#linger);
        this.#linger = null;
      }
      const batch = this.#take();
      if (batch.length === 0) return;
      const keys = new Set(batch.map((pending) => pending.key));
      for (const key of keys) this.#running.add(key);
      this.#inFlight++;
      this.#execute(batch).finally(() => {
        for (const key of keys) this.#running.delete(key);
        this.#inFlight--;
        if (batch.length > 1 && this.#options.lingerMs) this.#lingerAfter(batch.length);
        this.#drain();
      });
    }
  }

  /** Holds the next batch until the `answered` callers may have come back, or the linger ends. */
  #lingerAfter(answered: number): void {
    const wanted = Math.min(this.#options.maxBatch, this.#queue.length + answered);
    if (this.#linger !== null) {
      this.#lingerFor = Math.max(this.#lingerFor, wanted);
      return;
    }
    this.#lingerFor = wanted;
    this.#linger = setTimeout(() => {
      this.#linger = null;
      this.#drain();
    }, this.#options.lingerMs);
  }

  /**
   * The next batch: waiting calls in arrival order whose keys no running batch holds, one call
   * per key and per distinct key.
   */
  #take(): Pending<In, Out>[] {
    const batch: Pending<In, Out>[] = [];
    const keys = new Set<string>();
    const distincts = new Set<string>();
    const rest: Pending<In, Out>[] = [];
    for (const pending of this.#queue) {
      if (
        batch.length < this.#options.maxBatch && !this.#running.has(pending.key) &&
        !keys.has(pending.key) && !(pending.distinct !== null && distincts.has(pending.distinct))
      ) {
        batch.push(pending);
        keys.add(pending.key);
        if (pending.distinct !== null) distincts.add(pending.distinct);
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
