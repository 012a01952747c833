/// <reference lib="deno.worker" />
// The in-process side of bundle_hold_test.ts, in a worker so that it gets its own isolate (its
// own fetch batcher and its own minimum refusal time, read from the environment at start).

import { handler } from "../prekeys/handler.ts";
import { closePools } from "../_shared/db.ts";
import { admin, closeAdmin } from "./support.ts";

export type Scenario = {
  refuser: { userId: string; jwt: string; body: unknown; secondBody: unknown };
  fetcher: { jwt: string; body: unknown };
};
export type Outcome = {
  alone: { status: number; ms: number };
  refusal: { status: number };
  beside: { status: number; ms: number };
};

function fetchRequest(jwt: string, body: unknown): Request {
  return new Request("http://gateway.invalid/functions/v1/prekeys/fetch", {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function timed(jwt: string, body: unknown): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const response = await handler(fetchRequest(jwt, body));
  await response.body?.cancel();
  return { status: response.status, ms: performance.now() - started };
}

async function run({ refuser, fetcher }: Scenario): Promise<Outcome> {
  // Bundles with no refusal anywhere near them.
  const alone = await timed(fetcher.jwt, fetcher.body);
  // A refusal, which also creates the refuser's caller bucket.
  await timed(refuser.jwt, refuser.body);

  // The next refusal's batch waits on that bucket, locked here, until released: the bundles
  // fetch starts while it waits (one batch at a time, so it waits for that batch), and the
  // refusal's batch ends 20 ms later.
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  let locked!: () => void;
  const lockHeld = new Promise<void>((resolve) => locked = resolve);
  const lock = admin().begin(async (tx) => {
    await tx`select 1 from keyserver.rate_limit_buckets
      where key = ${"prekey_fetch:caller:" + refuser.userId} for update`;
    locked();
    await released;
  });
  await lockHeld;
  const refusal = timed(refuser.jwt, refuser.secondBody);
  for (let i = 0; i < 1000; i++) {
    const [{ waiting }] = await admin()`select count(*)::int as waiting from pg_stat_activity
      where wait_event_type = 'Lock' and query like '%gateway_prekey_fetch_batch%'`;
    if (waiting > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const beside = timed(fetcher.jwt, fetcher.body);
  await new Promise((resolve) => setTimeout(resolve, 20));
  release();
  await lock;
  const outcome = { alone, refusal: { status: (await refusal).status }, beside: await beside };
  await closePools();
  await closeAdmin();
  return outcome;
}

self.onmessage = async (event: MessageEvent<Scenario>) => {
  self.postMessage(await run(event.data));
};
self.postMessage("ready");
