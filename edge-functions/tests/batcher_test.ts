// The batcher behind the gateway's prekey fetches: a lone call runs at once, calls arriving
// while the in-flight limit is reached go together, a key is in at most one call of the running
// batches, and failures reach every caller of their batch and only those.
import assert from "node:assert/strict";
import { Batcher } from "../_shared/batcher.ts";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

const byValue = { keyOf: (n: number) => String(n) };

Deno.test("a lone call runs at once as a batch of one", async () => {
  const batches: number[][] = [];
  const batcher = new Batcher<number, number>((items) => {
    batches.push(items);
    return Promise.resolve(items.map((n) => n * 10));
  }, { maxInFlight: 2, maxBatch: 8, ...byValue });
  assert.equal(await batcher.submit(1), 10);
  assert.deepEqual(batches, [[1]]);
});

Deno.test("waiting calls go together, at most maxBatch, in arrival order", async () => {
  const gates: ReturnType<typeof deferred>[] = [];
  const batches: number[][] = [];
  const batcher = new Batcher<number, number>(async (items) => {
    batches.push(items);
    const gate = deferred();
    gates.push(gate);
    await gate.promise;
    return items.map((n) => -n);
  }, { maxInFlight: 1, maxBatch: 3, ...byValue });
  const results = [1, 2, 3, 4, 5, 6].map((n) => batcher.submit(n));
  assert.deepEqual(batches, [[1]], "the first call runs alone at once");
  gates[0].resolve();
  await results[0];
  await Promise.resolve();
  assert.deepEqual(batches[1], [2, 3, 4]);
  gates[1].resolve();
  await results[1];
  await Promise.resolve();
  assert.deepEqual(batches[2], [5, 6]);
  gates[2].resolve();
  assert.deepEqual(await Promise.all(results), [-1, -2, -3, -4, -5, -6]);
});

Deno.test("batches running at the same time never share a key", async () => {
  const gates = new Map<string, ReturnType<typeof deferred>>();
  const running = new Set<string>();
  const overlaps: string[] = [];
  const batches: string[][] = [];
  const batcher = new Batcher<string, string>(async (items) => {
    batches.push(items);
    const keys = new Set(items.map((s) => s[0]));
    for (const key of keys) {
      if (running.has(key)) overlaps.push(key);
      running.add(key);
    }
    const gate = deferred();
    gates.set(items.join(","), gate);
    await gate.promise;
    for (const key of keys) running.delete(key);
    return items;
  }, { maxInFlight: 2, maxBatch: 8, keyOf: (s) => s[0] });
  const results = ["a1", "b1", "a2", "c1", "b2", "a3"].map((s) => batcher.submit(s));
  // a1 and b1 run at once; a2 and b2 wait for them, c1 waits only for a free slot.
  assert.deepEqual(batches, [["a1"], ["b1"]]);
  gates.get("a1")!.resolve();
  await results[0];
  await Promise.resolve();
  assert.deepEqual(
    batches[2],
    ["a2", "c1"],
    "a2 goes once a1 ended, a3 not with it (one call per key); b2 still waits for b1",
  );
  gates.get("b1")!.resolve();
  await results[1];
  await Promise.resolve();
  assert.deepEqual(batches[3], ["b2"], "a3 still waits for a2");
  gates.get("a2,c1")!.resolve();
  await results[2];
  await Promise.resolve();
  assert.deepEqual(batches[4], ["a3"]);
  gates.get("b2")!.resolve();
  gates.get("a3")!.resolve();
  assert.deepEqual(await Promise.all(results), ["a1", "b1", "a2", "c1", "b2", "a3"]);
  assert.deepEqual(overlaps, []);
});

Deno.test("a batch holds one call per key; the others of that key go in later batches", async () => {
  const batches: string[][] = [];
  const gate = deferred();
  const batcher = new Batcher<string, string>(async (items) => {
    batches.push(items);
    if (items.includes("z")) await gate.promise;
    return items;
  }, { maxInFlight: 1, maxBatch: 8, keyOf: (s) => s[0] });
  const blocker = batcher.submit("z");
  const results = ["a1", "a2", "b1", "a3", "b2"].map((s) => batcher.submit(s));
  gate.resolve();
  await blocker;
  assert.deepEqual(await Promise.all(results), ["a1", "a2", "b1", "a3", "b2"]);
  assert.deepEqual(batches, [["z"], ["a1", "b1"], ["a2", "b2"], ["a3"]]);
});

Deno.test("calls with the same distinct key go in different batches", async () => {
  const batches: string[][] = [];
  const gate = deferred();
  const batcher = new Batcher<string, string>(async (items) => {
    batches.push(items);
    if (items.includes("z:z")) await gate.promise;
    return items;
  }, { maxInFlight: 2, maxBatch: 8, keyOf: (s) => s[0], distinctOf: (s) => s[2] });
  // caller:target; "z:z" holds one slot, so the rest gather and go in the other.
  const blocker = batcher.submit("z:z");
  const first = batcher.submit("a:t");
  const rest = ["b:t", "c:u", "d:t", "e:v"].map((s) => batcher.submit(s));
  assert.deepEqual(await first, "a:t");
  await Promise.all(rest);
  assert.deepEqual(batches, [["z:z"], ["a:t"], ["b:t", "c:u", "e:v"], ["d:t"]]);
  gate.resolve();
  await blocker;
});

Deno.test("a failed batch fails its own calls only, and the batcher goes on", async () => {
  const batcher = new Batcher<number, number>((items) => {
    if (items.includes(13)) return Promise.reject(new Error("database down"));
    return Promise.resolve(items);
  }, { maxInFlight: 1, maxBatch: 4, ...byValue });
  const unlucky = batcher.submit(13);
  const next = batcher.submit(2);
  await assert.rejects(unlucky, { message: /database down/ });
  assert.equal(await next, 2);
});

Deno.test("an answer with the wrong number of results fails the batch", async () => {
  const batcher = new Batcher<number, number>(
    () => Promise.resolve([1]),
    { maxInFlight: 1, maxBatch: 4, ...byValue },
  );
  const first = batcher.submit(1);
  const a = batcher.submit(2);
  const b = batcher.submit(3);
  assert.equal(await first, 1);
  await assert.rejects(a, { message: /1 results for 2 items/ });
  await assert.rejects(b, { message: /1 results for 2 items/ });
});

Deno.test("limits below one are refused", () => {
  assert.throws(
    () =>
      new Batcher<number, number>((items) => Promise.resolve(items), {
        maxInFlight: 0,
        maxBatch: 1,
        ...byValue,
      }),
    RangeError,
  );
});

/** A batcher whose batches wait for `gates` to open; `batches` records what each one held. */
function gatedBatcher(lingerMs: number) {
  const gates: ReturnType<typeof deferred>[] = [];
  const batches: number[][] = [];
  const started: number[] = [];
  const batcher = new Batcher<number, number>(async (items) => {
    batches.push(items);
    started.push(performance.now());
    const gate = deferred();
    gates.push(gate);
    await gate.promise;
    return items;
  }, { maxInFlight: 1, maxBatch: 8, lingerMs, ...byValue });
  return { batcher, gates, batches, started };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("after a batch of several, the next waits for as many new calls as it answered", async () => {
  const { batcher, gates, batches } = gatedBatcher(60_000);
  const first = batcher.submit(1);
  const pair = [batcher.submit(2), batcher.submit(3)];
  gates[0].resolve();
  await first;
  await tick();
  assert.deepEqual(batches, [[1], [2, 3]], "no linger after a batch of one");
  const later = [batcher.submit(4)];
  gates[1].resolve();
  await Promise.all(pair);
  later.push(batcher.submit(5));
  await tick();
  assert.equal(batches.length, 2, "two answered and one waiting: it waits for a third");
  later.push(batcher.submit(6));
  await tick();
  assert.deepEqual(batches[2], [4, 5, 6], "the third call ends the wait");
  gates[2].resolve();
  assert.deepEqual(await Promise.all(later), [4, 5, 6]);
});

Deno.test("the wait for a fuller batch ends after lingerMs", async () => {
  const lingerMs = 40;
  const { batcher, gates, batches, started } = gatedBatcher(lingerMs);
  const pair = [batcher.submit(1), batcher.submit(2)];
  assert.deepEqual(batches, [[1]]);
  gates[0].resolve();
  await pair[0];
  await tick();
  gates[1].resolve();
  await pair[1];
  const answered = performance.now();
  const lone = batcher.submit(3);
  await tick();
  assert.deepEqual(batches[2], [3], "no linger after [2], a batch of one");
  gates[2].resolve();
  assert.equal(await lone, 3);
  assert.ok(started[2] - answered < lingerMs, "it ran at once");

  // Now a batch of two, then a lone call: it waits the linger out.
  const both = [batcher.submit(4), batcher.submit(5)];
  await tick();
  assert.deepEqual(batches[3], [4, 5]);
  gates[3].resolve();
  await Promise.all(both);
  const waitedFrom = performance.now();
  const last = batcher.submit(6);
  await tick();
  assert.equal(batches.length, 4, "one call of the two answered is not enough");
  await new Promise((resolve) => setTimeout(resolve, lingerMs + 20));
  assert.deepEqual(batches[4], [6], "the linger ended");
  assert.ok(started[4] - waitedFrom >= lingerMs - 2, `it waited ${started[4] - waitedFrom} ms`);
  gates[4].resolve();
  assert.equal(await last, 6);
});
