// Bundles leave as soon as they are ready, except when a batch holding a refusal ended after
// their request started: they would then tell how long that refusal took (a fetch waits for the
// batch before it), so they are held to the minimum refusal time too. Run in one isolate (a
// worker, with a 400 ms minimum so that timing noise cannot blur the two outcomes) against the
// real database and WASM.
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

Deno.test("bundles beside a refusal's batch are held to the minimum, bundles alone are not", async () => {
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
  };
  const worker = await scenarioWorker();
  try {
    const outcome = await new Promise<Outcome>((resolve) => {
      worker.onmessage = (event) => resolve(event.data);
      worker.postMessage(scenario);
    });
    assert.equal(outcome.alone.status, 200, JSON.stringify(outcome));
    assert.ok(outcome.alone.ms < MIN_MS, `bundles alone took ${outcome.alone.ms} ms`);
    assert.equal(outcome.refusal.status, 404);
    assert.equal(outcome.beside.status, 200);
    assert.ok(
      outcome.beside.ms >= MIN_MS,
      `bundles that waited for a refusal's batch left after ${outcome.beside.ms} ms`,
    );
  } finally {
    worker.terminate();
    await closeAdmin();
  }
});
