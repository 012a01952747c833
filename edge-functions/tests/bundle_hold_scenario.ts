/// <reference lib="deno.worker" />
// The in-process side of bundle_hold_test.ts, in a worker so that it gets its own isolate (its
// own fetch batcher and its own minimum refusal time, read from the environment at start).

import { handler } from "../prekeys/handler.ts";
import { closePools } from "../_shared/db.ts";
import { admin, closeAdmin } from "./support.ts";

export type Scenario = {
  refuser: { userId: string; jwt: string; body: unknown; secondBody: unknown };
  fetcher: { jwt: string; body: unknown };
  /** A fetch of the refuser's, as another gateway process would send it to the key server. */
  elsewhere: unknown;
};
/** performance.now() readings of this worker. */
export type Timed = { status: number; startedAt: number; endedAt: number };
export type Outcome = { alone: Timed; refusal: Timed; beside: Timed; elsewhere: Timed } | {
  error: string;
};

function fetchRequest(jwt: string, body: unknown): Request {
  return new Request("http://gateway.invalid/functions/v1/prekeys/fetch", {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function timed(jwt: string, body: unknown): Promise<Timed> {
  const startedAt = performance.now();
  const response = await handler(fetchRequest(jwt, body));
  await response.body?.cancel();
  return { status: response.status, startedAt, endedAt: performance.now() };
}

/**
 * Resolves once a fetch batch waits for the row that backend `holder` locked. Any lock is not
 * enough: a batch briefly held up by another (autovacuum's, say) would let a later fetch reach
 * the row first.
 */
async function batchWaitingFor(holder: number): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const [{ waiting }] = await admin()`select count(*)::int as waiting from pg_stat_activity
      where query like '%gateway_prekey_fetch_batch%' and ${holder}::int = any (pg_blocking_pids(pid))`;
    if (waiting > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("the refusal's batch never waited for the lock");
}

async function run({ refuser, fetcher, elsewhere }: Scenario): Promise<Outcome> {
  // Bundles with no refusal anywhere near them.
  const alone = await timed(fetcher.jwt, fetcher.body);
  // A refusal, which also creates the refuser's caller bucket.
  await timed(refuser.jwt, refuser.body);

  // The next refusal's batch waits on that bucket, locked here until released 20 ms after the
  // others started: the bundles fetch (which waits for that batch: one batch at a time) and a
  // fetch of the refuser's from "another gateway" (which waits for the refuser's bucket).
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  let locked!: (holder: number) => void;
  const lockHeld = new Promise<number>((resolve) => locked = resolve);
  const lock = admin().begin(async (tx) => {
    const [{ holder }] =
      await tx`select pg_backend_pid() as holder from keyserver.rate_limit_buckets
      where key = ${"prekey_fetch:caller:" + refuser.userId} for update`;
    locked(holder);
    await released;
  });
  try {
    const holder = await lockHeld;
    const refusal = timed(refuser.jwt, refuser.secondBody);
    await batchWaitingFor(holder);
    const beside = timed(fetcher.jwt, fetcher.body);
    const elsewhereStarted = performance.now();
    const other = admin()`select * from keyserver.gateway_prekey_fetch_batch(
      ${JSON.stringify([elsewhere])}::text::jsonb)`.then(() => ({
      status: 0,
      startedAt: elsewhereStarted,
      endedAt: performance.now(),
    }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    return { alone, refusal: await refusal, beside: await beside, elsewhere: await other };
  } finally {
    release();
    await lock;
  }
}

self.onmessage = async (event: MessageEvent<Scenario>) => {
  let outcome: Outcome;
  try {
    outcome = await run(event.data);
  } catch (error) {
    outcome = { error: String(error) };
  }
  await closePools();
  await closeAdmin();
  self.postMessage(outcome);
};
self.postMessage("ready");
