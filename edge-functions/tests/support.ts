// Helpers for the Deno tests and the demo: where the running stack is (from `./x stack env`),
// users, tokens, calls, and the libsignal vectors.

export function env(name: string): string {
  const value = Deno.env.get(name);
  if (!value) {
    throw new Error(
      `${name} is not set: run the tests through ./x test or eval "$(./x stack env)"`,
    );
  }
  return value;
}

export function gatewayUrl(path: string): string {
  return `${env("GATEWAY_URL")}/functions/v1/${path}`;
}

export function hex(text: string): Uint8Array {
  if (text.length % 2 !== 0) throw new Error("odd-length hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export async function vector(name: string): Promise<Record<string, unknown>> {
  const url = new URL(`../../tests/vectors/libsignal-v0.73.3/${name}`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url));
}

// ---------------------------------------------------------------------------------------------
// Users, tokens, devices and calls against the running stack.

import postgres from "postgres";
import { SignJWT } from "jose";
import { core } from "../_shared/wasm.ts";

let superPool: postgres.Sql | null = null;

/** The superuser connection (test setup only: users, memberships, blocks, settings). */
export function admin(): postgres.Sql {
  superPool ??= postgres(env("DATABASE_URL"), { max: 4, onnotice: () => {} });
  return superPool;
}

export async function closeAdmin(): Promise<void> {
  if (superPool) await superPool.end();
  superPool = null;
}

const secret = () => new TextEncoder().encode(env("JWT_SECRET"));

/** An HS256 token as local Supabase issues them. */
export async function mintJwt(
  claims: Record<string, unknown>,
  expiresInSeconds = 3600,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ iss: "supabase-demo", ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSeconds)
    .sign(secret());
}

export type User = { id: string; jwt: string; tag: string };

/** A fresh auth user (unique per run, so reruns never collide) and its token. */
export async function newUser(label = "user"): Promise<User> {
  const id = crypto.randomUUID();
  const tag = `${label}-${id.slice(0, 8)}`;
  await admin()`insert into auth.users (id, aud, role, email)
    values (${id}, 'authenticated', 'authenticated', ${tag + "@test.invalid"})`;
  const jwt = await mintJwt({ sub: id, role: "authenticated", aud: "authenticated" });
  return { id, jwt, tag };
}

export type Call = {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  body: any;
};

/** One request to a function route; `body` is sent as JSON. */
export async function call(
  path: string,
  options: { jwt?: string; body?: unknown; method?: string; headers?: Record<string, string> } = {},
): Promise<Call> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.jwt) headers.authorization = `Bearer ${options.jwt}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(gatewayUrl(path), {
    method: options.method ?? (options.body === undefined ? "GET" : "POST"),
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, headers: response.headers, text, body };
}

export const b64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
export const unb64 = (text: string): Uint8Array =>
  Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** A real WASM device of `user`, published through the gateway. */
export type Member = { user: User; agentId: string; deviceId: number; device: core.Device };

export async function publishedDevice(
  user: User,
  agentId = `${user.tag}-agent`,
  deviceId = 1,
): Promise<Member> {
  const device = core.Device.create(agentId, deviceId);
  const ready = device.ensureReady(Date.now());
  const res = await call("prekeys/publish", {
    jwt: user.jwt,
    body: { agent_id: agentId, device_id: deviceId, upload: JSON.parse(ready.upload) },
  });
  if (res.status !== 200) throw new Error(`publish failed: ${res.status} ${res.text}`);
  return { user, agentId, deviceId, device };
}

/** Makes two users eligible for each other: a community both are current members of. */
export async function shareCommunity(...users: User[]): Promise<string> {
  const [owner, ...others] = users;
  const [row] = await admin()`insert into public.communities (name, created_by)
    values ('test community', ${owner.id}) returning id`;
  for (const u of others) {
    await admin()`insert into public.community_members (community_id, user_id, role)
      values (${row.id}, ${u.id}, 'member')`;
  }
  return row.id as string;
}

/** A share row as the device API returns it (`ShareRowJs`). */
export type ShareRow = {
  toAgentId: string;
  toDeviceId: number;
  shareKind: string;
  messageType: number;
  body: Uint8Array;
};

/** The body of `POST community-keys/shares` from `from`'s device. */
export function shareBody(
  from: { agentId: string; deviceId: number },
  community: string,
  keyId: number,
  shares: ShareRow[],
) {
  return {
    agent_id: from.agentId,
    device_id: from.deviceId,
    community_id: community,
    key_id: keyId,
    shares: shares.map((s) => ({
      to_agent_id: s.toAgentId,
      to_device_id: s.toDeviceId,
      share_kind: s.shareKind,
      message_type: s.messageType,
      encrypted_share: b64(s.body),
    })),
  };
}

export function fetchBody(from: Member, target: string, device: number | "all" = "all") {
  return {
    agent_id: from.agentId,
    device_id: from.deviceId,
    target_agent_id: target,
    target_device_id: device,
  };
}

/** A caller set up directly in SQL (agent and one active device, no keys of its own). */
export async function sqlMember(label = "sql"): Promise<Member & { device: never }> {
  const user = await newUser(label);
  const agentId = `${user.tag}-s`;
  const identity = new Uint8Array(33);
  crypto.getRandomValues(identity);
  identity[0] = 5;
  await admin()`insert into public.agents (agent_id, user_id) values (${agentId}, ${user.id})`;
  await admin()`insert into public.agent_devices (agent_id, device_id, user_id, registration_id,
    identity_key) values (${agentId}, 1, ${user.id}, 1, ${identity})`;
  return { user, agentId, deviceId: 1, device: undefined as never };
}

/** Sets key server settings for the duration of `work`, then restores them. */
export async function withSettings<T>(
  values: Record<string, unknown>,
  work: () => Promise<T>,
): Promise<T> {
  const keys = Object.keys(values);
  const before = await admin()`select key, value from keyserver.settings where key in ${
    admin()(keys)
  }`;
  try {
    for (const [key, value] of Object.entries(values)) {
      await admin()`update keyserver.settings set value = ${JSON.stringify(value)}::jsonb
        where key = ${key}`;
    }
    return await work();
  } finally {
    for (const row of before) {
      await admin()`update keyserver.settings set value = ${row.value} where key = ${row.key}`;
    }
  }
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** A genuine PreKey Signal message between two throwaway local devices (no server involved). */
export function genuineMessage(): { messageType: number; body: Uint8Array } {
  const sender = core.Device.create("local-sender", 1);
  const receiver = core.Device.create("local-receiver", 1);
  sender.ensureReady(Date.now());
  const upload = receiver.ensureReady(Date.now()).upload;
  const rows = core.validatePrekeyUpload(upload, Date.now());
  sender.processBundle("local-receiver", 1, rows.oneTime[0].bundle, Date.now());
  const [m] = sender.encrypt("local-receiver", 1, new TextEncoder().encode("hi"), Date.now());
  sender.free();
  receiver.free();
  return { messageType: m.messageType, body: m.body };
}

/** A key-server epoch (a `community_sender_key_state` row or the `rotate` answer's `epoch`). */
export type ServerEpoch = {
  key_id: number;
  rotation_kind: string;
  rotated_at: string | Date;
  grace_until?: string | Date | null;
};

/** The epoch row as the device API takes it (a community's first epoch counts as hard). */
export function epochRow(epoch: ServerEpoch): core.CommunityEpochRow {
  const ms = (t: string | Date) => new Date(t).getTime();
  return {
    keyId: epoch.key_id,
    rotatedAtMs: ms(epoch.rotated_at),
    rotation: epoch.rotation_kind === "soft" ? "soft" : "hard",
    graceUntilMs: epoch.grace_until ? ms(epoch.grace_until) : null,
  };
}

/** The community's current epoch row, read as the key server holds it. */
export async function currentEpoch(community: string): Promise<core.CommunityEpochRow> {
  const [row] = await admin()`select key_id, rotation_kind, rotated_at, grace_until
    from public.community_sender_key_state where community_id = ${community}`;
  return epochRow(row as unknown as ServerEpoch);
}
