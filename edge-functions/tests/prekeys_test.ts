// prekeys against the running stack: publish (validation in WASM, idempotency, stock, digest),
// fetch (eligibility, claims, last resort), and every validation failure.
import assert from "node:assert/strict";
import { core } from "../_shared/wasm.ts";
import {
  admin,
  call,
  closeAdmin,
  fetchBody,
  newUser,
  publishedDevice,
  shareCommunity,
} from "./support.ts";

const flip = (hex: string, i: number) =>
  hex.slice(0, 2 * i) +
  ((parseInt(hex.slice(2 * i, 2 * i + 2), 16) ^ 1).toString(16)).padStart(2, "0") +
  hex.slice(2 * i + 2);

Deno.test("publish stores a genuine upload, is idempotent and reports stock and digest", async () => {
  const user = await newUser("pub");
  const agentId = `${user.tag}-a`;
  const device = core.Device.create(agentId, 1);
  const upload = JSON.parse(device.ensureReady(Date.now()).upload);
  const body = { agent_id: agentId, device_id: 1, upload };
  const first = await call("prekeys/publish", { jwt: user.jwt, body });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.body.one_time_inserted, 100);
  assert.equal(first.body.last_resort, "inserted");
  assert.deepEqual(first.body.stock, {
    one_time_remaining: 100,
    last_resort_present: true,
    low_stock: false,
    low_stock_threshold: 10,
  });
  assert.match(first.body.key_digest, /^[0-9a-f]{64}$/);
  assert.equal(first.body.key_digest, first.body.upload_key_digest);
  assert.equal(first.body.drift, false);

  const again = await call("prekeys/publish", { jwt: user.jwt, body });
  assert.equal(again.status, 200);
  assert.equal(again.body.one_time_inserted, 0);
  assert.equal(again.body.one_time_duplicates, 100);
  assert.equal(again.body.last_resort, "unchanged");
  assert.equal(again.body.stock.one_time_remaining, 100);

  const stock = await call(`prekeys/stock?agent_id=${agentId}&device_id=1`, { jwt: user.jwt });
  assert.equal(stock.status, 200);
  assert.equal(stock.body.one_time_remaining, 100);
  assert.equal(stock.body.key_digest, first.body.key_digest);
});

Deno.test("publish refuses forged and malformed key material before it reaches Postgres", async () => {
  const user = await newUser("bad");
  const agentId = `${user.tag}-a`;
  const device = core.Device.create(agentId, 1);
  const good = JSON.parse(device.ensureReady(Date.now()).upload);
  const publish = (upload: unknown, extra: Record<string, unknown> = {}) =>
    call("prekeys/publish", {
      jwt: user.jwt,
      body: { agent_id: agentId, device_id: 1, upload, ...extra },
    });
  const copy = () => structuredClone(good);

  const tampered = copy();
  tampered.signed_pre_key.signature = flip(tampered.signed_pre_key.signature, 5);
  let r = await publish(tampered);
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, "invalid_signature");

  const kyberSig = copy();
  kyberSig.one_time_kyber_pre_keys[3].signature = flip(
    kyberSig.one_time_kyber_pre_keys[3].signature,
    0,
  );
  r = await publish(kyberSig);
  assert.equal(r.body.error.code, "invalid_signature");

  const wrongType = copy();
  wrongType.last_resort_kyber_pre_key.public = wrongType.signed_pre_key.public;
  r = await publish(wrongType);
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, "invalid_key");

  const wrongIdentity = copy();
  wrongIdentity.identity_key = "08" + wrongIdentity.identity_key.slice(2);
  r = await publish(wrongIdentity);
  assert.equal(r.body.error.code, "invalid_key");

  const duplicate = copy();
  duplicate.one_time_pre_keys[1].id = duplicate.one_time_pre_keys[0].id;
  r = await publish(duplicate);
  assert.equal(r.body.error.code, "duplicate_id");

  const oversized = copy();
  oversized.one_time_pre_keys.push({ ...oversized.one_time_pre_keys[0], id: 999_999 });
  r = await publish(oversized);
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, "too_many_keys");

  r = await publish(good, { expires_at: new Date(Date.now() + 400 * 86_400_000).toISOString() });
  assert.equal(r.body.error.code, "invalid_expiry");
  r = await publish(good, { expires_at: "yesterday" });
  assert.equal(r.status, 400);

  r = await call("prekeys/publish", {
    jwt: user.jwt,
    body: { agent_id: "someone-else", device_id: 1, upload: good },
  });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, "invalid_request");

  // Nothing of the above was stored.
  const [row] = await admin()`select count(*)::int as n from public.signal_prekey_bundles_v2
    where agent_id = ${agentId}`;
  assert.equal(row.n, 0);
  const ok = await publish(good, {
    expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString(),
  });
  assert.equal(ok.status, 200, ok.text);
});

Deno.test("publish under another user's agent is refused", async () => {
  const owner = await newUser("own");
  const thief = await newUser("thief");
  const victim = await publishedDevice(owner);
  const device = core.Device.create(victim.agentId, 2);
  const upload = JSON.parse(device.ensureReady(Date.now()).upload);
  const r = await call("prekeys/publish", {
    jwt: thief.jwt,
    body: { agent_id: victim.agentId, device_id: 2, upload },
  });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "agent_unavailable");
  const stock = await call(`prekeys/stock?agent_id=${victim.agentId}&device_id=1`, {
    jwt: thief.jwt,
  });
  assert.equal(stock.status, 403);
});

Deno.test("an eligible contact fetches real bundles, starts a session, and stock drops", async () => {
  const alice = await publishedDevice(await newUser("alice"));
  const bob = await publishedDevice(await newUser("bob"));
  await shareCommunity(alice.user, bob.user);
  const r = await call("prekeys/fetch", {
    jwt: alice.user.jwt,
    body: fetchBody(alice, bob.agentId),
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.bundles.length, 1);
  const [b] = r.body.bundles;
  assert.equal(b.kind, "one_time");
  assert.equal(b.device_id, 1);
  assert.ok(Number(r.headers.get("ratelimit-limit")) > 0);
  const outcome = alice.device.processBundle(bob.agentId, 1, b.bundle, Date.now());
  assert.equal(outcome.newDevice, true);
  const [message] = alice.device.encrypt(
    bob.agentId,
    1,
    new TextEncoder().encode("hi"),
    Date.now(),
  );
  assert.equal(message.messageType, 3);
  const opened = bob.device.decrypt(alice.agentId, 1, 3, message.body, Date.now());
  assert.equal(new TextDecoder().decode(opened.plaintext), "hi");

  const stock = await call(`prekeys/stock?agent_id=${bob.agentId}&device_id=1`, {
    jwt: bob.user.jwt,
  });
  assert.equal(stock.body.one_time_remaining, 99);

  // One device by number.
  const one = await call("prekeys/fetch", {
    jwt: alice.user.jwt,
    body: fetchBody(alice, bob.agentId, 1),
  });
  assert.equal(one.status, 200);
  assert.notEqual(one.body.bundles[0].key_id, b.key_id);
});

Deno.test("multi-device targets get one bundle per active device; last resort when empty", async () => {
  const owner = await newUser("multi");
  const first = await publishedDevice(owner, `${owner.tag}-m`, 1);
  await publishedDevice(owner, first.agentId, 2);
  const caller = await publishedDevice(await newUser("caller"));
  await shareCommunity(owner, caller.user);
  const all = await call("prekeys/fetch", {
    jwt: caller.user.jwt,
    body: fetchBody(caller, first.agentId),
  });
  assert.equal(all.status, 200);
  assert.deepEqual(all.body.bundles.map((b: { device_id: number }) => b.device_id), [1, 2]);

  // Drain device 2's one-time stock directly, then fetch: the last-resort bundle comes back.
  await admin()`update public.signal_prekey_bundles_v2 set consumed = true
    where agent_id = ${first.agentId} and device_id = 2 and kind = 'one_time'`;
  const two = await call("prekeys/fetch", {
    jwt: caller.user.jwt,
    body: fetchBody(caller, first.agentId, 2),
  });
  assert.equal(two.status, 200);
  assert.equal(two.body.bundles[0].kind, "last_resort");
});

Deno.test("fetch validates its body and the caller's own device", async () => {
  const me = await publishedDevice(await newUser("val"));
  const cases: [Record<string, unknown>, number, string][] = [
    [{ ...fetchBody(me, "x"), target_device_id: 0 }, 400, "invalid_request"],
    [{ ...fetchBody(me, "x"), target_device_id: "some" }, 400, "invalid_request"],
    [{ ...fetchBody(me, "bad id!") }, 400, "invalid_request"],
    [{ ...fetchBody(me, "x"), device_id: 9 }, 403, "device_not_owned"],
    [{ ...fetchBody(me, "x"), agent_id: "not-mine" }, 403, "caller_agent_not_owned"],
    [{ ...fetchBody(me, "x"), invite_token: "" }, 400, "invalid_request"],
  ];
  for (const [body, status, code] of cases) {
    const r = await call("prekeys/fetch", { jwt: me.user.jwt, body });
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.body.error.code, code);
  }
  const wrongMethod = await call("prekeys/fetch", { jwt: me.user.jwt });
  assert.equal(wrongMethod.status, 405);
  await closeAdmin();
});

Deno.test("invites and AI2AI connections make a stranger eligible; blocks undo it", async () => {
  const target = await publishedDevice(await newUser("inv"));
  const stranger = await publishedDevice(await newUser("str"));
  const fetchAs = (invite_token?: string) =>
    call("prekeys/fetch", {
      jwt: stranger.user.jwt,
      body: {
        ...fetchBody(stranger, target.agentId, 1),
        ...(invite_token ? { invite_token } : {}),
      },
    });
  assert.equal((await fetchAs()).status, 404);
  assert.equal((await fetchAs("not-a-real-token")).status, 404);

  const [invite] = await admin().begin(async (sql) => {
    await sql`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${
      JSON.stringify({ sub: target.user.id, role: "authenticated" })
    }, true)`;
    return await sql`select token from keyserver.create_contact_invite(${target.agentId})`;
  });
  const withInvite = await fetchAs(invite.token);
  assert.equal(withInvite.status, 200, withInvite.text);
  // The used invite made them contacts: no token needed any more.
  assert.equal((await fetchAs()).status, 200);

  // An AI2AI connection with both scores above the thresholds.
  const other = await publishedDevice(await newUser("ai"));
  const [a, b] = [stranger.agentId, other.agentId].sort();
  await admin()`insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score,
    compatibility_score) values (${a}, ${b}, 0.9, 0.8)`;
  const connected = await call("prekeys/fetch", {
    jwt: stranger.user.jwt,
    body: fetchBody(stranger, other.agentId, 1),
  });
  assert.equal(connected.status, 200, connected.text);
  await admin()`update public.ai2ai_connections set entanglement_score = 0.1,
    compatibility_score = 0.1 where agent_a = ${a} and agent_b = ${b}`;
  const below = await call("prekeys/fetch", {
    jwt: stranger.user.jwt,
    body: fetchBody(stranger, other.agentId, 1),
  });
  assert.equal(below.status, 404);

  // The caller blocking the target ends it too.
  await admin()`insert into public.user_blocks (blocker_user_id, blocked_agent_id)
    values (${stranger.user.id}, ${target.agentId})`;
  assert.equal((await fetchAs()).status, 404);
  await closeAdmin();
});

Deno.test("an AI2AI connection with either score at its threshold is enough", async () => {
  // The policy (WASM) and the key server's recheck agree: entanglement OR compatibility.
  const caller = await publishedDevice(await newUser("one"));
  const entangled = await publishedDevice(await newUser("ent"));
  const compatible = await publishedDevice(await newUser("cmp"));
  const low = await publishedDevice(await newUser("low"));
  const connect = async (other: string, entanglement: number, compatibility: number) => {
    const [a, b] = [caller.agentId, other].sort();
    await admin()`insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score,
      compatibility_score) values (${a}, ${b}, ${entanglement}, ${compatibility})`;
  };
  await connect(entangled.agentId, 0.9, 0.1);
  await connect(compatible.agentId, 0.1, 0.5);
  await connect(low.agentId, 0.49, 0.49);
  const fetchOf = (target: string) =>
    call("prekeys/fetch", { jwt: caller.user.jwt, body: fetchBody(caller, target, 1) });

  for (const target of [entangled, compatible]) {
    const r = await fetchOf(target.agentId);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.bundles.length, 1);
    assert.equal(r.body.bundles[0].kind, "one_time");
    // A real bundle: the caller can start a session with it.
    const outcome = caller.device.processBundle(
      target.agentId,
      1,
      r.body.bundles[0].bundle,
      Date.now(),
    );
    assert.equal(outcome.newDevice, true);
  }
  // Both below: the uniform answer, byte for byte the one for an agent that does not exist.
  const below = await fetchOf(low.agentId);
  const missing = await fetchOf(`${low.agentId}-missing`);
  assert.equal(below.status, 404);
  assert.equal(below.text, missing.text);
  assert.equal(below.body.error.code, "target_unavailable");
  const [row] = await admin()`select count(*)::int as n from public.signal_prekey_bundles_v2
    where agent_id = ${low.agentId} and consumed`;
  assert.equal(row.n, 0);
  await closeAdmin();
});
