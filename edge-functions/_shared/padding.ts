// The minimum answer time of a prekey fetch refusal: every refusal, whatever its reason, leaves
// no earlier than SPOTS_FETCH_MIN_MS after its request started, so a missing, an ineligible, a
// blocked and an empty target cannot be told apart by timing. Bundles say by themselves that
// the target exists and accepts the caller, so they leave at once, unless they waited for a
// refusal: a batch holding a refusal keeps its answers, and its statement its rate-limit rows,
// until the minimum (prekeys/handler.ts, decideHoldingRefusals).

import { intSetting } from "./settings.ts";

/** Every fetch refusal takes at least this long. */
export const FETCH_MIN_MS = intSetting("SPOTS_FETCH_MIN_MS", 8, 1, 1000);

/** Resolves no earlier than FETCH_MIN_MS after `started` (a performance.now() reading). */
export async function padUntil(started: number): Promise<void> {
  // Timers take whole milliseconds (setTimeout drops a fraction, so it could fire early) and
  // never fire before their delay: rounding up keeps every held answer at or above the minimum.
  const wait = Math.ceil(FETCH_MIN_MS - (performance.now() - started));
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}
