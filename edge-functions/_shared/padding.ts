// The minimum answer time of a prekey fetch refusal: every refusal, whatever its reason, leaves
// no earlier than SPOTS_FETCH_MIN_MS after its request started, so a missing, an ineligible and
// a blocked target cannot be told apart by timing. Bundles, which say by themselves that the
// target is there and accepts the caller, are handed out at once.

/** Every fetch refusal takes at least this long. */
export const FETCH_MIN_MS = Number(Deno.env.get("SPOTS_FETCH_MIN_MS") ?? "8");

/** Resolves no earlier than FETCH_MIN_MS after `started` (a performance.now() reading). */
export async function padUntil(started: number): Promise<void> {
  // Timers take whole milliseconds (setTimeout drops a fraction, so it could fire early) and
  // never fire before their delay: rounding up keeps every answer at or above the minimum.
  const wait = Math.ceil(FETCH_MIN_MS - (performance.now() - started));
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}
