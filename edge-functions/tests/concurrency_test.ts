// 64 parallel fetches of one device (64 eligible callers) never receive the same one-time key.
import assert from "node:assert/strict";
import {
  call,
  closeAdmin,
  fetchBody,
  newUser,
  publishedDevice,
  shareCommunity,
  sqlMember,
} from "./support.ts";

Deno.test("64 parallel fetches of one device never share a one-time key", async () => {
  const target = await publishedDevice(await newUser("hot"));
  const callers = [];
  for (let i = 0; i < 64; i++) callers.push(await sqlMember("par"));
  await shareCommunity(target.user, ...callers.map((c) => c.user));
  const results = await Promise.all(
    callers.map((c) =>
      call("prekeys/fetch", { jwt: c.user.jwt, body: fetchBody(c, target.agentId, 1) })
    ),
  );
  const keyIds = results.map((r) => {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.bundles[0].kind, "one_time");
    return r.body.bundles[0].key_id as number;
  });
  assert.equal(new Set(keyIds).size, 64);
  const preKeys = results.map((r) => r.body.bundles[0].bundle.pre_key_id as number);
  assert.equal(new Set(preKeys).size, 64);
  const stock = await call(`prekeys/stock?agent_id=${target.agentId}&device_id=1`, {
    jwt: target.user.jwt,
  });
  assert.equal(stock.body.one_time_remaining, 36);
  await closeAdmin();
});
