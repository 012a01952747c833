// prekeys: publish (validated in WASM), fetch for a contact (policy in WASM, claim in SQL,
// enumeration-proof answers) and stock.
//
//   POST prekeys/publish  {agent_id, device_id, upload: PublishPlan, expires_at?}
//   POST prekeys/fetch    {agent_id, device_id, target_agent_id, target_device_id: n | "all",
//                          invite_token?}
//   GET  prekeys/stock?agent_id=&device_id=

import { errorResponse, HttpError, json, jsonHeaders, readJsonBody } from "../_shared/http.ts";
import { makeHandler, methodNotAllowed, notFound } from "../_shared/serve.ts";
import { asRole, fetchBatchDb, keyserver, keyserverError, serviceDb } from "../_shared/db.ts";
import { authenticateUser } from "../_shared/auth.ts";
import { core, rejected } from "../_shared/wasm.ts";
import type { EligibilityFacts } from "../_shared/wasm/spots_crypto_wasm.d.ts";
import * as input from "../_shared/input.ts";
import { rateLimited, rateLimitHeaders, type RateLimitState } from "../_shared/rate_limit.ts";
import { Batcher } from "../_shared/batcher.ts";
import { FETCH_MIN_MS, padUntil } from "../_shared/padding.ts";
import { intSetting } from "../_shared/settings.ts";

/** Uploads with 100 Kyber keys are about 330 KB of JSON. */
const PUBLISH_MAX_BODY = 600 * 1024;

type StockRow = {
  one_time_remaining: number;
  last_resort_present: boolean;
  low_stock: boolean;
  low_stock_threshold: number;
};

async function publish(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const body = await readJsonBody(req, PUBLISH_MAX_BODY);
  const me = input.self(body);
  const upload = input.object(body.upload, "upload");
  if (upload.agent_id !== me.agentId || upload.device_id !== me.deviceId) {
    throw new HttpError(400, "invalid_request", "upload names another agent or device");
  }
  const expiresAt = input.optionalString(body.expires_at, "expires_at", 40);
  const expiresAtMs = expiresAt === null ? undefined : Date.parse(expiresAt);
  if (expiresAtMs !== undefined && !Number.isFinite(expiresAtMs)) {
    throw new HttpError(400, "invalid_request", "expires_at must be an ISO 8601 timestamp");
  }
  let valid: ReturnType<typeof core.validatePrekeyUpload>;
  try {
    valid = core.validatePrekeyUpload(JSON.stringify(upload), Date.now(), expiresAtMs);
  } catch (error) {
    throw rejected(error);
  }
  const expires = expiresAtMs === undefined ? null : new Date(expiresAtMs).toISOString();
  const oneTime = valid.oneTime.map((row) => ({
    key_id: row.keyId,
    bundle: row.bundle,
    ...(expires ? { expires_at: expires } : {}),
  }));
  const lastResort = {
    key_id: valid.lastResort.keyId,
    bundle: valid.lastResort.bundle,
    ...(expires ? { expires_at: expires } : {}),
  };
  const result = await keyserver(() =>
    asRole("authenticated", caller.claims, async (sql) => {
      // Another user's (or a retired) agent id: one uniform refusal, as a permission error.
      await sql`select keyserver.claim_agent(${me.agentId})`.catch((error) => {
        const e = keyserverError(error);
        if (e instanceof HttpError && e.code === "agent_unavailable") {
          throw new HttpError(403, e.code, "this agent id is not yours");
        }
        throw e;
      });
      await sql`select keyserver.register_device(${me.agentId}, ${me.deviceId},
                  ${valid.registrationId}, decode(${input.toBase64(valid.identityKey)}, 'base64'))`;
      const [row] = await sql`select keyserver.publish_prekey_bundles(${me.agentId},
                  ${me.deviceId}, ${JSON.stringify(oneTime)}::text::jsonb,
                  ${JSON.stringify(lastResort)}::text::jsonb) as result`;
      const [stored] = await sql`select bundle_json::text as bundle from
                  public.signal_prekey_bundles_v2 where agent_id = ${me.agentId}
                  and device_id = ${me.deviceId} and kind = 'last_resort' and not consumed`;
      return { ...row.result, stored: stored?.bundle as string | undefined };
    })
  );
  const keyDigest = result.stored ? core.bundleDigest(result.stored) : null;
  return json({
    one_time_inserted: result.one_time_inserted,
    one_time_duplicates: result.one_time_duplicates,
    one_time_conflicts: result.one_time_conflicts,
    last_resort: result.last_resort,
    stock: result.stock,
    key_digest: keyDigest,
    upload_key_digest: valid.keyDigest,
    drift: keyDigest !== valid.keyDigest,
  });
}

async function stock(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const me = input.self(input.query(req));
  const row = await keyserver(() =>
    asRole("authenticated", caller.claims, async (sql) => {
      const [s] = await sql<StockRow[]>`select s.one_time_remaining, s.last_resort_present,
                  s.low_stock, s.low_stock_threshold from keyserver.prekey_stock(${me.agentId}) s
                  where s.device_id = ${me.deviceId}`;
      if (!s) return null;
      const [stored] = await sql`select bundle_json::text as bundle from
                  public.signal_prekey_bundles_v2 where agent_id = ${me.agentId}
                  and device_id = ${me.deviceId} and kind = 'last_resort' and not consumed
                  and expires_at > now()`;
      return { ...s, stored: stored?.bundle as string | undefined };
    })
  );
  if (!row) throw new HttpError(403, "device_not_owned", "not an active device of yours");
  return json({
    one_time_remaining: row.one_time_remaining,
    last_resort_present: row.last_resort_present,
    low_stock: row.low_stock,
    low_stock_threshold: row.low_stock_threshold,
    key_digest: row.stored ? core.bundleDigest(row.stored) : null,
  });
}

/** The one answer for a target that is missing, not eligible, blocked or has nothing left. */
const UNAVAILABLE = new HttpError(
  404,
  "target_unavailable",
  "no prekeys are available for this target",
);

type FetchRow = {
  /** invalid_argument | caller_agent_not_owned | device_not_owned, and nothing else; or null. */
  error: string | null;
  rate_allowed: boolean;
  rate_capacity: number;
  rate_remaining: number;
  rate_reset_seconds: number;
  rate_retry_after_seconds: number;
  /** The eligibility facts for the policy; null when a rate limit refused the fetch. */
  facts: EligibilityFacts | null;
  /** JSON text of the claimed bundles ("[]" when none), spliced into the answer as is. */
  bundles: string;
};

/** One fetch as keyserver.gateway_prekey_fetch takes it. */
type FetchRequest = {
  caller_user: string;
  caller_agent: string;
  caller_device: number;
  target_agent: string;
  target_device: number | null;
};

const FETCH_ERRORS: Record<string, HttpError> = {
  invalid_argument: new HttpError(400, "invalid_argument", "invalid argument"),
  caller_agent_not_owned: new HttpError(403, "caller_agent_not_owned", "caller agent not owned"),
  device_not_owned: new HttpError(403, "device_not_owned", "not an active device of yours"),
};

/** keyserver.gateway_prekey_fetch_batch takes up to this many fetches. */
const FETCH_BATCH_LIMIT = 16;

const FETCH_BATCH_MAX = intSetting("SPOTS_FETCH_BATCH_MAX", 8, 1, FETCH_BATCH_LIMIT);
const FETCH_BATCHES_IN_FLIGHT = intSetting("SPOTS_FETCH_BATCHES_IN_FLIGHT", 1, 1, 64);
const FETCH_BATCH_LINGER_MS = intSetting("SPOTS_FETCH_BATCH_LINGER_MS", 8, 0, 50);

/** A fetch on its way to the key server: its arguments and when its request started. */
type PendingFetch = { request: FetchRequest; started: number };

/**
 * Fetches without an invite that arrive while others are in the database go together as one
 * call of keyserver.gateway_prekey_fetch_batch, which runs each step once for the whole batch.
 * On 2 cores that shares the statement, transaction and round-trip costs that dominated a
 * fetch (BENCHMARKS.md, Gateway). One batch of up to 8 fetches at a time per isolate: with the
 * local gateway's 2 isolates Postgres runs up to one batch per core of the bench machine, and
 * the fetches that arrive meanwhile make the next batch larger, which shares its fixed cost more
 * (on the 2-core bench machine 1,580-1,625 fetches/s against 1,050-1,350 with 2 batches per
 * isolate, interleaved; more backends than cores only competed for them). The batch function
 * takes one fetch per caller and per target. A caller is in at most one fetch of an isolate's
 * running batches, so they never wait for each other's buckets; the function also locks in one
 * global order, which keeps batches of other isolates and gateway processes from deadlocking
 * with these. Fetches of one target go in different batches, which may run at the same time
 * (bundles are claimed with SKIP LOCKED).
 *
 * The batch after a batch of several waits up to SPOTS_FETCH_BATCH_LINGER_MS (8) to fill, as
 * batcher.ts describes: at 16 connections, batches of 7-7.5 fetches instead of 3.5-3.8, and
 * 1,714 against 1,257 fetches/s interleaved, already with a 2 ms cap (BENCHMARKS.md, Gateway).
 */
const fetchBatcher = new Batcher<PendingFetch, DecidedRow>(
  (fetches) =>
    decideHoldingRefusals(
      fetches,
      (holdMs) =>
        fetchBatchDb(FETCH_BATCHES_IN_FLIGHT)<FetchRow[]>`select f.error, f.rate_allowed,
          f.rate_capacity, f.rate_remaining, f.rate_reset_seconds, f.rate_retry_after_seconds,
          f.facts, f.bundles
        from keyserver.gateway_prekey_fetch_batch_held(
          ${JSON.stringify(fetches.map((fetch) => fetch.request))}::text::jsonb,
          ${holdMs} * interval '1 millisecond') f
        order by f.n`,
    ),
  {
    maxInFlight: FETCH_BATCHES_IN_FLIGHT,
    maxBatch: FETCH_BATCH_MAX,
    keyOf: (fetch) => fetch.request.caller_user,
    distinctOf: (fetch) => fetch.request.target_agent,
    lingerMs: FETCH_BATCH_LINGER_MS,
  },
);

/** A fetch presenting an invite goes alone: its invite row is shared with other callers. */
async function fetchWithInvite(fetch: PendingFetch, invite: string): Promise<DecidedRow> {
  const { request } = fetch;
  const [row] = await decideHoldingRefusals(
    [fetch],
    () =>
      serviceDb()<FetchRow[]>`select * from keyserver.gateway_prekey_fetch(
              ${request.caller_user}::uuid, ${request.caller_agent}, ${request.caller_device}::integer,
              ${request.target_agent}, ${request.target_device}::integer, ${invite})`,
  );
  return row;
}

/** A fetch's row and whether it hands out bundles. */
type DecidedRow = FetchRow & { handsOut: boolean };

/**
 * Runs `query` for `fetches` and decides each fetch on its row. When any is refused, nothing
 * is handed on until the minimum answer time after the latest of them started, so whatever
 * waits for them (the isolate's next batch, this batch's own bundles) sees that minimum, not
 * how long the refusal took. `query` gets what is left of that minimum, for the batch
 * statement, which holds the fetches' rate-limit rows until then when it holds a refusal
 * (a fetch of the same caller from another isolate waits for those rows).
 */
async function decideHoldingRefusals(
  fetches: PendingFetch[],
  query: (holdMs: number) => Promise<FetchRow[]>,
): Promise<DecidedRow[]> {
  const latestStart = Math.max(...fetches.map((fetch) => fetch.started));
  const holdMs = Math.max(0, Math.ceil(FETCH_MIN_MS - (performance.now() - latestStart)));
  try {
    const decided = (await keyserver(() => query(holdMs))).map((row) => ({
      ...row,
      handsOut: !row.error && row.rate_allowed && policyAllows(row.facts!, row.bundles),
    }));
    if (decided.some((row) => !row.handsOut)) await padUntil(latestStart);
    return decided;
  } catch (error) {
    // A failed batch is held too: when it failed tells nothing either.
    await padUntil(latestStart);
    throw error;
  }
}

async function fetchForContact(req: Request, started: number): Promise<Response> {
  const caller = await authenticateUser(req);
  const body = await readJsonBody(req);
  const me = input.self(body);
  const target = input.agentId(body.target_agent_id, "target_agent_id");
  const targetDevice = body.target_device_id === "all"
    ? null
    : input.deviceId(body.target_device_id, "target_device_id");
  const invite = input.optionalString(body.invite_token, "invite_token", 256);

  // Whatever the target: the caller's device, both buckets, the facts (nothing about the
  // target's existence among them) and, if the database's own verdict on them allows, the claim.
  const request: FetchRequest = {
    caller_user: caller.userId,
    caller_agent: me.agentId,
    caller_device: me.deviceId,
    target_agent: target,
    target_device: targetDevice,
  };
  const fetch: PendingFetch = { request, started };
  const row = invite === null
    ? await fetchBatcher.submit(fetch)
    : await fetchWithInvite(fetch, invite);
  if (row.error) {
    throw FETCH_ERRORS[row.error] ?? new HttpError(500, "internal", "internal error");
  }
  const rate: RateLimitState = {
    allowed: row.rate_allowed,
    capacity: row.rate_capacity,
    remaining: row.rate_remaining,
    reset_seconds: row.rate_reset_seconds,
    retry_after_seconds: row.rate_retry_after_seconds,
  };
  if (row.handsOut) {
    return new Response(
      // The bundles are the database's JSON text: no parse and re-serialisation here.
      `{"target_agent_id":${JSON.stringify(target)},"bundles":${row.bundles}}`,
      { status: 200, headers: { ...jsonHeaders, ...rateLimitHeaders(rate) } },
    );
  }
  const refusal = rate.allowed
    ? new HttpError(
      UNAVAILABLE.status,
      UNAVAILABLE.code,
      UNAVAILABLE.message,
      rateLimitHeaders(rate),
    )
    : rateLimited(rate);
  await padUntil(started);
  return errorResponse(refusal);
}

/**
 * Whether there are bundles to hand out and the core's policy allows on the database's facts
 * (evaluated for every fetch the rate limits let through, whatever the target). The database
 * claims on its own verdict, the same rule: a refusal here of claimed bundles means the two
 * rules have drifted apart, so the bundles are withheld and the drift is logged.
 */
function policyAllows(facts: EligibilityFacts, bundles: string): boolean {
  const decision = core.evaluateEligibility(facts);
  if (bundles === "[]") return false;
  if (!decision.allowed) {
    console.warn(`prekeys: policy refused bundles the database claimed (${decision.reason})`);
  }
  return decision.allowed;
}

export const handler = makeHandler("prekeys", async (req, route) => {
  switch (route) {
    case "publish":
      if (req.method !== "POST") methodNotAllowed();
      return await publish(req);
    case "fetch": {
      if (req.method !== "POST") methodNotAllowed();
      const started = performance.now();
      try {
        return await fetchForContact(req, started);
      } catch (error) {
        // Refusals about the caller are held too, so no refusal is quicker than another.
        await padUntil(started);
        throw error;
      }
    }
    case "stock":
      if (req.method !== "GET") methodNotAllowed();
      return await stock(req);
    default:
      notFound();
  }
});
