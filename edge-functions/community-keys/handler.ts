// community-keys: epoch key shares (each a Signal message, checked in WASM), epoch rotation by
// admins, and the caller's own shares.
//
//   POST community-keys/shares {agent_id, device_id, community_id, key_id, shares: [{to_agent_id,
//        to_device_id, share_kind?, message_type, encrypted_share (base64), encryption_type?}]}
//   POST community-keys/rotate {agent_id, device_id, community_id, kind: "soft" | "hard",
//        grace_seconds?}
//   GET  community-keys/mine?agent_id=&device_id=&community_id=&min_key_id=

import { HttpError, json, readJsonBody } from "../_shared/http.ts";
import { makeHandler, methodNotAllowed, notFound } from "../_shared/serve.ts";
import { asRole, keyserver, serviceDb } from "../_shared/db.ts";
import { authenticateUser } from "../_shared/auth.ts";
import { core, rejected } from "../_shared/wasm.ts";
import * as input from "../_shared/input.ts";

/** The key server's community_share_batch_max and share size check. */
const SHARES_MAX = 1000;
const SHARE_MAX_BYTES = 16 * 1024;
const SHARES_MAX_BODY = 4 * 1024 * 1024;

async function ownDevice(userId: string, agentId: string, deviceId: number): Promise<void> {
  const [row] = await serviceDb()`select exists (select 1 from public.agent_devices d
      where d.agent_id = ${agentId} and d.device_id = ${deviceId} and d.user_id = ${userId}::uuid
      and d.revoked_at is null) as ok`;
  if (!row.ok) throw new HttpError(403, "device_not_owned", "not an active device of yours");
}

async function postShares(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const body = await readJsonBody(req, SHARES_MAX_BODY);
  const me = input.self(body);
  const community = input.uuid(body.community_id, "community_id");
  const keyId = input.integer(body.key_id, "key_id", 1, 2 ** 31 - 1);
  const items = input.array(body.shares, "shares");
  if (items.length === 0) throw new HttpError(400, "invalid_request", "shares is empty");
  if (items.length > SHARES_MAX) {
    throw new HttpError(413, "batch_too_large", `at most ${SHARES_MAX} shares per call`);
  }
  const shares = items.map((item, i) => {
    const s = input.object(item, `shares[${i}]`);
    const type = input.integer(s.message_type, `shares[${i}].message_type`, 0, 255);
    const kind = input.optionalString(s.share_kind, `shares[${i}].share_kind`, 64) ??
      "epoch_key_v1";
    const encryption =
      input.optionalString(s.encryption_type, `shares[${i}].encryption_type`, 64) ??
        "signal_protocol";
    const bytes = input.base64(s.encrypted_share, `shares[${i}].encrypted_share`, SHARE_MAX_BYTES);
    try {
      core.validateShare(encryption, kind, type, bytes);
    } catch (error) {
      throw rejected(error, `shares[${i}]`);
    }
    return {
      to_agent_id: input.agentId(s.to_agent_id, `shares[${i}].to_agent_id`),
      to_device_id: input.deviceId(s.to_device_id, `shares[${i}].to_device_id`),
      share_kind: kind,
      message_type: type,
      encrypted_share: s.encrypted_share as string,
    };
  });
  const [row] = await keyserver(() =>
    serviceDb()`select keyserver.post_community_shares(${caller.userId}::uuid, ${me.agentId},
        ${me.deviceId}, ${community}::uuid, ${keyId}::integer,
        ${JSON.stringify(shares)}::text::jsonb) as r`
  );
  return json({ accepted: row.r.accepted, ids: row.r.ids });
}

async function rotate(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const body = await readJsonBody(req);
  const me = input.self(body);
  const community = input.uuid(body.community_id, "community_id");
  if (body.kind !== "soft" && body.kind !== "hard") {
    throw new HttpError(400, "invalid_request", "kind must be soft or hard");
  }
  const grace = body.grace_seconds === undefined || body.grace_seconds === null
    ? null
    : `${input.integer(body.grace_seconds, "grace_seconds", 1, 30 * 86_400)} seconds`;
  await ownDevice(caller.userId, me.agentId, me.deviceId);
  const sql = serviceDb();
  const [row] = await keyserver(() =>
    sql`select keyserver.rotate_community_epoch(${caller.userId}::uuid, ${community}::uuid,
        ${body.kind as string}, ${grace}::interval) as epoch`
  );
  // Whom to share the new epoch with: active devices of current members (a hard rotation
  // after a removal leaves the removed member out).
  const recipients = await sql`select agent_id, device_id
      from keyserver.community_recipients(${caller.userId}::uuid, ${community}::uuid)
      order by agent_id, device_id`;
  return json({
    epoch: row.epoch,
    recipients: recipients.map((r) => ({ agent_id: r.agent_id, device_id: r.device_id })),
  });
}

async function mine(req: Request): Promise<Response> {
  const caller = await authenticateUser(req);
  const q = input.query(req);
  const me = input.self(q);
  const community = input.uuid(q.community_id, "community_id");
  const minKeyId = q.min_key_id === undefined
    ? 1
    : input.integer(q.min_key_id, "min_key_id", 1, 2 ** 31 - 1);
  const rows = await keyserver(() =>
    asRole("authenticated", caller.claims, async (sql) => {
      const [own] = await sql`select exists (select 1 from public.agent_devices d
                  where d.agent_id = ${me.agentId} and d.device_id = ${me.deviceId}) as ok`;
      if (!own.ok) throw new HttpError(403, "device_not_owned", "not a device of yours");
      return await sql`select id, key_id, share_kind, from_agent_id, from_device_id, message_type,
                  encode(encrypted_share, 'base64') as encrypted_share, created_at
                  from keyserver.my_community_shares(${community}::uuid, ${me.agentId},
                  ${me.deviceId}, ${minKeyId}::integer)`;
    })
  );
  return json({
    shares: rows.map((r) => ({
      id: r.id,
      key_id: r.key_id,
      share_kind: r.share_kind,
      from_agent_id: r.from_agent_id,
      from_device_id: r.from_device_id,
      message_type: r.message_type,
      encrypted_share: (r.encrypted_share as string).replaceAll("\n", ""),
      created_at: (r.created_at as Date).toISOString(),
    })),
  });
}

export const handler = makeHandler("community-keys", async (req, route) => {
  switch (route) {
    case "shares":
      if (req.method !== "POST") methodNotAllowed();
      return await postShares(req);
    case "rotate":
      if (req.method !== "POST") methodNotAllowed();
      return await rotate(req);
    case "mine":
      if (req.method !== "GET") methodNotAllowed();
      return await mine(req);
    default:
      notFound();
  }
});
