// The minimum answer time of a prekey fetch refusal holds for every refusal, including when the
// time left is a fraction of a millisecond (which setTimeout alone would drop).
import assert from "node:assert/strict";
import { FETCH_MIN_MS, padUntil } from "../_shared/padding.ts";

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
