// Bundles leave as soon as they are ready, but nothing that waited for a refusal's batch comes
// back before that refusal's minimum answer time: not the isolate's next batch (a fetch waits
// for the batch before it) and not a fetch of the same caller from another gateway process (it
// waits for the caller's rate-limit row, which the batch keeps locked until then). Else their
// timing would tell how long the refusal took. Run in one isolate (a worker, with a 400 ms
// minimum so that timing noise cannot blur the outcomes) against the real database and WASM.
import assert from "node:assert/strict";
import type { Outcome, Scenario } from "./bundle_hold_scenario.ts";
import {
  closeAdmin,
  env,
  fetchBody,
  newUser,
  publishedDevice,
  shareCommunity,
  sqlMember,
} from "./support.ts";

const MIN_MS = 400;

/** Starts the scenario worker with the gateway's environment and a long minimum. */
async function scenarioWorker(): Promise<Worker> {
  // Read when first used, so they stay set (the demo sets the same database URL).
  Deno.env.set("SUPABASE_DB_URL", env("AUTHENTICATOR_DATABASE_URL"));
  Deno.env.set("SPOTS_JWT_SECRET", env("JWT_SECRET"));
  // Read when the worker's modules load, so only until the worker says it is ready.
  const before = Deno.env.get("SPOTS_FETCH_MIN_MS");
  Deno.env.set("SPOTS_FETCH_MIN_MS", String(MIN_MS));
  const worker = new Worker(new URL("./bundle_hold_scenario.ts", import.meta.url).href, {
    type: "module",
  });
  try {
    await new Promise<void>((resolve, reject) => {
      worker.onmessage = () => resolve();
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
    });
  } finally {
    if (before === undefined) Deno.env.delete("SPOTS_FETCH_MIN_MS");
    else Deno.env.set("SPOTS_FETCH_MIN_MS", before);
  }
  return worker;
}

Deno.test("what waits for a refusal's batch waits for its minimum answer time too", async () => {
  const target = await publishedDevice(await newUser("hold-target"));
  const fetcher = await sqlMember("hold-fetch");
  const refuser = await sqlMember("hold-refuse");
  await shareCommunity(target.user, fetcher.user);
  const scenario: Scenario = {
    refuser: {
      userId: refuser.user.id,
      jwt: refuser.user.jwt,
      body: fetchBody(refuser, `missing-${crypto.randomUUID()}`, 1),
      secondBody: fetchBody(refuser, `missing-${crypto.randomUUID()}`, 1),
    },
    fetcher: { jwt: fetcher.user.jwt, body: fetchBody(fetcher, target.agentId, 1) },
    elsewhere: {
      caller_user: refuser.user.id,
      caller_agent: refuser.agentId,
      caller_device: 1,
      target_agent: `missing-${crypto.randomUUID()}`,
      target_device: 1,
    },
  };
  const worker = await scenarioWorker();
  try {
    const outcome = await new Promise<Outcome>((resolve, reject) => {
      worker.onmessage = (event) => resolve(event.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
      worker.postMessage(scenario);
    });
    if ("error" in outcome) throw new Error(outcome.error);
    const { alone, refusal, beside, elsewhere } = outcome;
    assert.equal(alone.status, 200);
    const aloneMs = alone.endedAt - alone.startedAt;
    assert.ok(aloneMs < MIN_MS, `bundles alone took ${aloneMs} ms`);
    assert.equal(refusal.status, 404);
    assert.equal(beside.status, 200);
    // Both started after the refusal and were let go 20 ms later, when its batch ended.
    const deadline = refusal.startedAt + MIN_MS;
    assert.ok(
      beside.endedAt >= deadline,
      `bundles that waited for the refusal's batch came ${deadline - beside.endedAt} ms early`,
    );
    assert.ok(
      elsewhere.endedAt >= deadline,
      `the caller's fetch from elsewhere came ${deadline - elsewhere.endedAt} ms early`,
    );
  } finally {
    worker.terminate();
    await closeAdmin();
  }
});
