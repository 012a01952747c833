// The health function over HTTP against the running local stack.
import assert from "node:assert/strict";
import { gatewayUrl } from "./support.ts";

Deno.test("health reports the core version, a passing WASM self-check and the database", async () => {
  const response = await fetch(gatewayUrl("health"));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  const body = await response.json();
  assert.equal(body.status, "ok");
  assert.match(body.core_version, /^\d+\.\d+\.\d+/);
  assert.equal(body.self_check.ok, true);
  assert.ok(body.self_check.checks.length >= 3);
  assert.ok(body.self_check.checks.every((c: { passed: boolean }) => c.passed));
  assert.equal(body.database, true);
});

Deno.test("health answers CORS preflight and refuses other methods and routes", async () => {
  const preflight = await fetch(gatewayUrl("health"), { method: "OPTIONS" });
  await preflight.body?.cancel();
  assert.equal(preflight.status, 204);
  const post = await fetch(gatewayUrl("health"), { method: "POST", body: "{}" });
  assert.equal(post.status, 405);
  assert.equal((await post.json()).error.code, "method_not_allowed");
  const missing = await fetch(gatewayUrl("health/nope"));
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
  const unknownFunction = await fetch(gatewayUrl("no-such-function"));
  assert.equal(unknownFunction.status, 404);
  await unknownFunction.body?.cancel();
});
