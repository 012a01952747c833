// The minimum answer time of a prekey fetch refusal holds for every refusal, including when the
// time left is a fraction of a millisecond (which setTimeout alone would drop); bundles are held
// to it only when a refusal's batch ended after their request started.
import assert from "node:assert/strict";
import { FETCH_MIN_MS, noteBatchEnded, padBundlesIfNeeded, padUntil } from "../_shared/padding.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("padUntil never resolves before the minimum answer time", async () => {
  for (const spent of [0, 0.3, 0.99, 1.5, 2.7, FETCH_MIN_MS - 0.2, FETCH_MIN_MS + 1]) {
    for (let i = 0; i < 20; i++) {
      const started = performance.now() - spent;
      await padUntil(started);
      const elapsed = performance.now() - started;
      assert.ok(
        elapsed >= Math.max(FETCH_MIN_MS, spent),
        `${spent} ms spent: answered after ${elapsed} ms`,
      );
    }
  }
});

Deno.test("bundles are held only after a refusal's batch ended since they started", async () => {
  noteBatchEnded(true);
  await sleep(2);
  let started = performance.now();
  noteBatchEnded(false);
  await padBundlesIfNeeded(started);
  assert.ok(performance.now() - started < FETCH_MIN_MS, "a refusal before the start holds nothing");

  started = performance.now();
  await sleep(1);
  noteBatchEnded(true);
  await padBundlesIfNeeded(started);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= FETCH_MIN_MS, `held for ${elapsed} ms after a refusal's batch ended`);
});
