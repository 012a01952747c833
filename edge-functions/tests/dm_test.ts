// dm: real Signal messages between WASM devices through send, inbox and ack; refusals for
// non-Signal payloads, oversized batches, blocked and unknown recipients; all-or-nothing.
import assert from "node:assert/strict";
import {
  admin,
  b64,
  call,
  closeAdmin,
  fetchBody,
  type Member,
  newUser,
  publishedDevice,
  shareCommunity,
  unb64,
} from "./support.ts";

const text = (s: string) => new TextEncoder().encode(s);

async function connected(): Promise<[Member, Member]> {
  const alice = await publishedDevice(await newUser("dma"));
  const bob = await publishedDevice(await newUser("dmb"));
  await shareCommunity(alice.user, bob.user);
  const fetched = await call("prekeys/fetch", {
    jwt: alice.user.jwt,
    body: fetchBody(alice, bob.agentId),
  });
  assert.equal(fetched.status, 200, fetched.text);
  for (const b of fetched.body.bundles) {
    alice.device.processBundle(bob.agentId, b.device_id, b.bundle, Date.now());
  }
  return [alice, bob];
}

function envelopes(from: Member, to: string, message: string) {
  return from.device.encrypt(to, "all", text(message), Date.now()).map((m) => ({
    to_agent_id: m.agentId,
    to_device_id: m.deviceId,
    message_type: m.messageType,
    body: b64(m.body),
  }));
}

Deno.test("send, inbox, decrypt, reply and ack with real devices", async () => {
  const [alice, bob] = await connected();
  const sent = await call("dm/send", {
    jwt: alice.user.jwt,
    body: {
      agent_id: alice.agentId,
      device_id: 1,
      envelopes: envelopes(alice, bob.agentId, "hello bob"),
    },
  });
  assert.equal(sent.status, 200, sent.text);
  assert.equal(sent.body.accepted, 1);
  assert.ok(sent.headers.get("ratelimit-remaining"));

  const inbox = await call(`dm/inbox?agent_id=${bob.agentId}&device_id=1`, { jwt: bob.user.jwt });
  assert.equal(inbox.status, 200);
  assert.equal(inbox.body.envelopes.length, 1);
  const [env] = inbox.body.envelopes;
  assert.equal(env.from_agent_id, alice.agentId);
  assert.equal(env.message_type, 3);
  const opened = bob.device.decrypt(
    env.from_agent_id,
    env.from_device_id,
    env.message_type,
    unb64(env.body),
    Date.now(),
  );
  assert.equal(new TextDecoder().decode(opened.plaintext), "hello bob");

  // The reply is a SignalMessage (type 2), accepted as well.
  const reply = bob.device.encrypt(alice.agentId, 1, text("hi alice"), Date.now())[0];
  assert.equal(reply.messageType, 2);
  const back = await call("dm/send", {
    jwt: bob.user.jwt,
    body: {
      agent_id: bob.agentId,
      device_id: 1,
      envelopes: [{
        to_agent_id: alice.agentId,
        to_device_id: 1,
        message_type: 2,
        body: b64(reply.body),
      }],
    },
  });
  assert.equal(back.status, 200, back.text);

  // Paging and ack.
  const page = await call(`dm/inbox?agent_id=${bob.agentId}&device_id=1&after_id=${env.id}`, {
    jwt: bob.user.jwt,
  });
  assert.equal(page.body.envelopes.length, 0);
  const ack = await call("dm/ack", {
    jwt: bob.user.jwt,
    body: { agent_id: bob.agentId, device_id: 1, ids: [env.id] },
  });
  assert.equal(ack.status, 200);
  assert.equal(ack.body.acknowledged, 1);
  const empty = await call(`dm/inbox?agent_id=${bob.agentId}&device_id=1`, { jwt: bob.user.jwt });
  assert.equal(empty.body.envelopes.length, 0);
  // Someone else's ids are ignored.
  const again = await call("dm/ack", {
    jwt: alice.user.jwt,
    body: { agent_id: alice.agentId, device_id: 1, ids: [env.id] },
  });
  assert.equal(again.body.acknowledged, 0);
});

Deno.test("send refuses non-Signal payloads and tampered framing, storing nothing", async () => {
  const [alice, bob] = await connected();
  const good = envelopes(alice, bob.agentId, "x")[0];
  const bad: [Record<string, unknown>, number, string][] = [
    [{ ...good, body: b64(text("hello bob, in plaintext")) }, 422, "malformed_message"],
    [{ ...good, body: b64(text(JSON.stringify({ text: "hi" }))) }, 422, "malformed_message"],
    [{ ...good, message_type: 8 }, 422, "not_signal_message"],
    [{ ...good, message_type: 2 }, 422, "malformed_message"],
    [
      { ...good, body: b64(new Uint8Array([...unb64(good.body), 0x7a, 0x01, 0x00])) },
      422,
      "not_canonical",
    ],
    [{ ...good, body: "not base64!" }, 400, "invalid_request"],
    [{ ...good, to_device_id: 200 }, 400, "invalid_request"],
  ];
  for (const [envelope, status, code] of bad) {
    // A good envelope first: the whole batch is refused.
    const r = await call("dm/send", {
      jwt: alice.user.jwt,
      body: { agent_id: alice.agentId, device_id: 1, envelopes: [good, envelope] },
    });
    assert.equal(r.status, status, r.text);
    assert.equal(r.body.error.code, code);
  }
  const [row] =
    await admin()`select count(*)::int as n from public.dm_envelopes where to_agent_id = ${bob.agentId}`;
  assert.equal(row.n, 0);
  const tooMany = await call("dm/send", {
    jwt: alice.user.jwt,
    body: { agent_id: alice.agentId, device_id: 1, envelopes: Array(101).fill(good) },
  });
  assert.equal(tooMany.status, 413);
  assert.equal(tooMany.body.error.code, "batch_too_large");
  const none = await call("dm/send", {
    jwt: alice.user.jwt,
    body: { agent_id: alice.agentId, device_id: 1, envelopes: [] },
  });
  assert.equal(none.status, 400);
});

Deno.test("blocked, unrelated and unknown recipients get one uniform refusal", async () => {
  const [alice, bob] = await connected();
  const good = envelopes(alice, bob.agentId, "before the block");
  await admin()`insert into public.user_blocks (blocker_user_id, blocked_agent_id) values (${bob.user.id}, ${alice.agentId})`;
  const blocked = await call("dm/send", {
    jwt: alice.user.jwt,
    body: { agent_id: alice.agentId, device_id: 1, envelopes: good },
  });
  const stranger = await publishedDevice(await newUser("dms"));
  const unrelated = await call("dm/send", {
    jwt: alice.user.jwt,
    body: {
      agent_id: alice.agentId,
      device_id: 1,
      envelopes: good.map((e) => ({ ...e, to_agent_id: stranger.agentId })),
    },
  });
  const unknown = await call("dm/send", {
    jwt: alice.user.jwt,
    body: {
      agent_id: alice.agentId,
      device_id: 1,
      envelopes: good.map((e) => ({ ...e, to_agent_id: "nobody-" + crypto.randomUUID() })),
    },
  });
  for (const r of [blocked, unrelated, unknown]) {
    assert.equal(r.status, 404, r.text);
    assert.equal(r.body.error.code, "recipient_unavailable");
  }
  assert.equal(blocked.text, unknown.text);
  assert.equal(unrelated.text, unknown.text);
});

Deno.test("send rate limit: the sender's bucket publishes headers and answers 429", async () => {
  const [alice, bob] = await connected();
  const good = envelopes(alice, bob.agentId, "spam");
  await admin()`insert into keyserver.rate_limit_buckets (key, level, capacity, refill_interval, updated_at)
    values (${"dm_send:caller:" + alice.user.id}, 600, 600, '1 minute', now())
    on conflict (key) do update set level = 600, updated_at = now()`;
  const r = await call("dm/send", {
    jwt: alice.user.jwt,
    body: { agent_id: alice.agentId, device_id: 1, envelopes: good },
  });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get("ratelimit-remaining"), "0");
  assert.ok(Number(r.headers.get("retry-after")) >= 1);
  await closeAdmin();
});
