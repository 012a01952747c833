// ops: Prometheus text from the monitoring views, for the service role only, without ids.
import assert from "node:assert/strict";
import { call, mintJwt, newUser, publishedDevice } from "./support.ts";

Deno.test("ops/metrics serves aggregated Prometheus text to the service role", async () => {
  const member = await publishedDevice(await newUser("ops"));
  const service = await mintJwt({ role: "service_role" });
  const r = await call("ops/metrics", { jwt: service });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const lines = r.text.trimEnd().split("\n");
  for (const line of lines) {
    assert.match(
      line,
      /^(# (HELP|TYPE) [a-z0-9_]+ .+|[a-z0-9_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+)$/,
      line,
    );
  }
  const value = (name: string) =>
    Number(lines.find((l) => l.startsWith(name + " "))!.split(" ")[1]);
  assert.ok(value("spots_prekey_devices") >= 1);
  assert.ok(value("spots_prekey_one_time_remaining") >= 100);
  assert.ok(!r.text.includes(member.agentId));
  assert.ok(!r.text.includes(member.user.id));
  assert.equal((await call("ops/metrics", { jwt: member.user.jwt })).status, 403);
  assert.equal((await call("ops/metrics", { jwt: service, method: "POST", body: {} })).status, 405);
  assert.equal((await call("ops/nope", { jwt: service })).status, 404);
});
