// Authentication on every function: no token, a bad signature, an expired token, alg=none,
// another algorithm, a wrong role; and another user's agent in a body.
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import {
  b64,
  call,
  closeAdmin,
  env,
  genuineMessage,
  mintJwt,
  newUser,
  publishedDevice,
} from "./support.ts";

const ROUTES: [string, string][] = [
  ["POST", "prekeys/publish"],
  ["POST", "prekeys/fetch"],
  ["GET", "prekeys/stock?agent_id=a&device_id=1"],
  ["POST", "dm/send"],
  ["GET", "dm/inbox?agent_id=a&device_id=1"],
  ["POST", "dm/ack"],
  ["POST", "community-keys/shares"],
  ["POST", "community-keys/rotate"],
  ["GET", "community-keys/mine?agent_id=a&device_id=1&community_id=x"],
  ["GET", "ops/metrics"],
];

function b64url(text: string): string {
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

async function tokens(sub: string): Promise<Record<string, string>> {
  const claims = { sub, role: "authenticated", aud: "authenticated" };
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${
    b64url(JSON.stringify({ ...claims, exp: now + 3600 }))
  }.`;
  const otherSecret = await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode("another-secret-another-secret-another-secret"));
  const hs512 = await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS512" })
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(env("JWT_SECRET")));
  const good = await mintJwt(claims);
  const [h, p, s] = good.split(".");
  const tamperedPayload = b64url(
    JSON.stringify({ ...claims, sub: crypto.randomUUID(), exp: now + 3600 }),
  );
  return {
    bad_signature: otherSecret,
    expired: await mintJwt(claims, -120),
    alg_none: unsigned,
    alg_none_with_signature: `${b64url(JSON.stringify({ alg: "none" }))}.${p}.${s}`,
    hs512,
    tampered: `${h}.${tamperedPayload}.${s}`,
    no_exp: await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(
      new TextEncoder().encode(env("JWT_SECRET")),
    ),
    garbage: "not.a.token",
  };
}

Deno.test("every route refuses a missing or invalid token", async () => {
  const bad = await tokens(crypto.randomUUID());
  for (const [method, path] of ROUTES) {
    const body = method === "POST" ? {} : undefined;
    const none = await call(path, { method, body });
    assert.equal(none.status, 401, `${path} without a token`);
    assert.equal(none.body.error.code, "missing_token");
    const basic = await call(path, { method, body, headers: { authorization: "Basic abc" } });
    assert.equal(basic.status, 401);
    for (const [name, jwt] of Object.entries(bad)) {
      const r = await call(path, { method, body, jwt });
      assert.equal(r.status, 401, `${path} with ${name}`);
      assert.equal(r.body.error.code, name === "expired" ? "token_expired" : "invalid_token");
    }
  }
});

Deno.test("roles: anon and service tokens cannot act as a user; users cannot read ops", async () => {
  const anon = await mintJwt({ role: "anon" });
  const service = await mintJwt({ role: "service_role" });
  const user = await newUser("roles");
  for (const jwt of [anon, service]) {
    const r = await call("prekeys/fetch", { jwt, body: {} });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, "forbidden");
  }
  for (const jwt of [anon, user.jwt]) {
    const r = await call("ops/metrics", { jwt });
    assert.equal(r.status, 403);
  }
  const weird = await mintJwt({ role: "supabase_admin", sub: user.id });
  assert.equal((await call("ops/metrics", { jwt: weird })).status, 401);
  const noSub = await mintJwt({ role: "authenticated" });
  assert.equal((await call("prekeys/fetch", { jwt: noSub, body: {} })).status, 401);
});

Deno.test("a user cannot act for another user's agent or device", async () => {
  const victim = await publishedDevice(await newUser("victim"));
  const mallory = await publishedDevice(await newUser("mallory"));
  const asVictim = { agent_id: victim.agentId, device_id: 1 };
  const fetch = await call("prekeys/fetch", {
    jwt: mallory.user.jwt,
    body: { ...asVictim, target_agent_id: mallory.agentId, target_device_id: "all" },
  });
  assert.equal(fetch.status, 403);
  const stock = await call(`prekeys/stock?agent_id=${victim.agentId}&device_id=1`, {
    jwt: mallory.user.jwt,
  });
  assert.equal(stock.status, 403);
  const inbox = await call(`dm/inbox?agent_id=${victim.agentId}&device_id=1`, {
    jwt: mallory.user.jwt,
  });
  assert.equal(inbox.status, 403);
  const ack = await call("dm/ack", { jwt: mallory.user.jwt, body: { ...asVictim, ids: [1] } });
  assert.equal(ack.status, 403);
  const message = genuineMessage();
  const send = await call("dm/send", {
    jwt: mallory.user.jwt,
    body: {
      ...asVictim,
      envelopes: [{
        to_agent_id: mallory.agentId,
        to_device_id: 1,
        message_type: message.messageType,
        body: b64(message.body),
      }],
    },
  });
  assert.equal(send.status, 403, send.text);
  await closeAdmin();
});

Deno.test("CORS preflight and request size limits on the gateway routes", async () => {
  for (const [, path] of ROUTES) {
    const r = await call(path.split("?")[0], {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST" },
    });
    assert.equal(r.status, 204, path);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    assert.match(r.headers.get("access-control-allow-headers") ?? "", /authorization/);
    assert.match(r.headers.get("access-control-expose-headers") ?? "", /RateLimit-Remaining/);
  }
  const user = await newUser("size");
  const big = { agent_id: "a", device_id: 1, padding: "x".repeat(65 * 1024) };
  const fetchTooBig = await call("prekeys/fetch", { jwt: user.jwt, body: big });
  assert.equal(fetchTooBig.status, 413);
  assert.equal(fetchTooBig.body.error.code, "body_too_large");
  const huge = { ...big, padding: "x".repeat(601 * 1024) };
  const publishTooBig = await call("prekeys/publish", { jwt: user.jwt, body: huge });
  assert.equal(publishTooBig.status, 413);
  const notJson = await fetch(`${env("GATEWAY_URL")}/functions/v1/prekeys/fetch`, {
    method: "POST",
    headers: { authorization: `Bearer ${user.jwt}`, "content-type": "application/json" },
    body: "{not json",
  });
  assert.equal(notJson.status, 400);
  assert.equal((await notJson.json()).error.code, "invalid_json");
});
