// dm: the Signal mailbox.
//
//   POST dm/send   {agent_id, device_id, envelopes: [{to_agent_id, to_device_id, message_type,
//                  body (base64)}]}            every envelope must be a Signal message (WASM)
//   GET  dm/inbox?agent_id=&device_id=&after_id=&limit=
//   POST dm/ack    {agent_id, device_id, ids: [id, ...]}

import { HttpError, json, readJsonBody } from "../_shared/http.ts";
import { makeHandler, methodNotAllowed, notFound } from "../_shared/serve.ts";
import { asRole, keyserver, serviceDb } from "../_shared/db.ts";
import { authenticateUser } from "../_shared/auth.ts";
import { core, rejected } from "../_shared/wasm.ts";
import * as input from "../_shared/input.ts";
import { enforce, type RateLimitState } from "../_shared/rate_limit.ts";

/** The key server's dm_batch_max and dm_body_max_bytes. */
const BATCH_MAX = 100;
const BODY_MAX_BYTES = 64 * 1024;
const SEND_MAX_BODY = 2 * 1024 * 1024;

type Envelope = { to_agent_id: string; to_device_id: number; message_type: number; body: string };

async function send(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const body = await readJsonBody(req, SEND_MAX_BODY);
  const me = input.self(body);
  const items = input.array(body.envelopes, "envelopes");
  if (items.length === 0) throw new HttpError(400, "invalid_request", "envelopes is empty");
  if (items.length > BATCH_MAX) {
    throw new HttpError(413, "batch_too_large", `at most ${BATCH_MAX} envelopes per call`);
  }
  const envelopes: Envelope[] = items.map((item, i) => {
    const e = input.object(item, `envelopes[${i}]`);
    const type = input.integer(e.message_type, `envelopes[${i}].message_type`, 0, 255);
    const bytes = input.base64(e.body, `envelopes[${i}].body`, BODY_MAX_BYTES);
    try {
      core.validateSignalMessage(type, bytes);
    } catch (error) {
      throw rejected(error, `envelopes[${i}]`);
    }
    return {
      to_agent_id: input.agentId(e.to_agent_id, `envelopes[${i}].to_agent_id`),
      to_device_id: input.deviceId(e.to_device_id, `envelopes[${i}].to_device_id`),
      message_type: type,
      body: e.body as string,
    };
  });
  const recipients = [...new Set(envelopes.map((e) => e.to_agent_id))];
  const sql = serviceDb();

  // The sender's bucket, the sender's device, and the facts for every recipient agent.
  const [row] = await keyserver(() =>
    sql`select
          (select to_jsonb(r) from keyserver.consume_rate_limit(
             ${"dm_send:caller:" + caller.userId}, keyserver.setting_int('dm_send_capacity'),
             keyserver.setting_interval('dm_send_refill'), ${envelopes.length}::integer) r)
             as rate,
          exists (select 1 from public.agent_devices d where d.agent_id = ${me.agentId}
                  and d.device_id = ${me.deviceId} and d.user_id = ${caller.userId}::uuid
                  and d.revoked_at is null) as device_ok,
          (select jsonb_agg(keyserver.eligibility_facts(${caller.userId}::uuid, ${me.agentId}, t))
             from unnest(${recipients}::text[]) t) as facts`
  );
  const headers = enforce(row.rate as RateLimitState);
  if (!row.device_ok) {
    throw new HttpError(403, "device_not_owned", "not an active device of yours", headers);
  }
  // The same policy as a prekey fetch: one uniform refusal for any recipient not allowed.
  for (const facts of row.facts as unknown[]) {
    if (
      !core.evaluateEligibility(facts as Parameters<typeof core.evaluateEligibility>[0]).allowed
    ) {
      throw new HttpError(404, "recipient_unavailable", "a recipient cannot be messaged", headers);
    }
  }
  const [sent] = await keyserver(() =>
    sql`select keyserver.send_dm_batch(${caller.userId}::uuid, ${me.agentId}, ${me.deviceId},
              ${JSON.stringify(envelopes)}::text::jsonb) as r`
  ).catch((error) => {
    if (error instanceof HttpError) {
      throw new HttpError(error.status, error.code, error.message, headers);
    }
    throw error;
  });
  return json(
    { accepted: sent.r.accepted, ids: (sent.r.ids as number[]).map(String) },
    200,
    headers,
  );
}

async function inbox(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const q = input.query(req);
  const me = input.self(q);
  const after = q.after_id === undefined
    ? 0
    : input.integer(q.after_id, "after_id", 0, 2 ** 53 - 1);
  const limit = q.limit === undefined ? 100 : input.integer(q.limit, "limit", 1, 500);
  const rows = await keyserver(() =>
    asRole("authenticated", caller.claims, async (sql) => {
      const [own] = await sql`select exists (select 1 from public.agent_devices d
                  where d.agent_id = ${me.agentId} and d.device_id = ${me.deviceId}) as ok`;
      if (!own.ok) throw new HttpError(403, "device_not_owned", "not a device of yours");
      return await sql`select id::text as id, from_agent_id, from_device_id, message_type,
                  encode(body, 'base64') as body, created_at
                  from keyserver.dm_inbox(${me.agentId}, ${me.deviceId}, ${after}::bigint,
                  ${limit}::integer)`;
    })
  );
  const envelopes = rows.map((r) => ({
    id: r.id,
    from_agent_id: r.from_agent_id,
    from_device_id: r.from_device_id,
    message_type: r.message_type,
    body: r.body.replaceAll("\n", ""),
    created_at: (r.created_at as Date).toISOString(),
  }));
  return json({
    envelopes,
    next_after_id: envelopes.length ? envelopes[envelopes.length - 1].id : String(after),
  });
}

async function ack(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const body = await readJsonBody(req);
  const me = input.self(body);
  const ids = input.array(body.ids, "ids");
  if (ids.length === 0 || ids.length > 500) {
    throw new HttpError(400, "invalid_request", "ids must hold 1..500 ids");
  }
  const parsed = ids.map((id, i) => String(input.integer(id, `ids[${i}]`, 1, 2 ** 53 - 1)));
  const deleted = await keyserver(() =>
    asRole("authenticated", caller.claims, async (sql) => {
      const [own] = await sql`select exists (select 1 from public.agent_devices d
                  where d.agent_id = ${me.agentId} and d.device_id = ${me.deviceId}) as ok`;
      if (!own.ok) throw new HttpError(403, "device_not_owned", "not a device of yours");
      const [r] = await sql`select keyserver.dm_ack(${me.agentId}, ${me.deviceId},
                  ${parsed}::bigint[]) as n`;
      return r.n as number;
    })
  );
  return json({ acknowledged: deleted });
}

export const handler = makeHandler("dm", async (req, route) => {
  switch (route) {
    case "send":
      if (req.method !== "POST") methodNotAllowed();
      return await send(req);
    case "inbox":
      if (req.method !== "GET") methodNotAllowed();
      return await inbox(req);
    case "ack":
      if (req.method !== "POST") methodNotAllowed();
      return await ack(req);
    default:
      notFound();
  }
});
