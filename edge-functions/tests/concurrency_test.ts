// Parallel fetches: 64 callers of one device never receive the same one-time key, and batches of
// many callers to shared and fresh targets never deadlock.
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

Deno.test("parallel fetches by the same callers to shared and fresh targets never deadlock", async () => {
  // Batches of one isolate never share a caller, whose buckets are the rows a fetch waits for;
  // batches of the gateway's isolates may, and the function locks in one order for them. A
  // deadlock would surface as a 500 (PostgreSQL aborts one transaction of the cycle); batches
  // sorted by caller but sharing callers did deadlock here.
  const target = await publishedDevice(await newUser("shared"));
  const callers: Awaited<ReturnType<typeof sqlMember>>[] = [];
  for (let i = 0; i < 8; i++) callers.push(await sqlMember("lock"));
  await shareCommunity(target.user, ...callers.map((c) => c.user));
  const targets = [
    target.agentId,
    ...Array.from({ length: 7 }, (_, i) => `fresh-${crypto.randomUUID()}-${i}`),
  ];
  // Rounds of fetches in which the callers come in ascending, then descending order: unordered
  // batches of them would take the callers' bucket locks in opposite orders.
  const rounds = targets.map((_, j) => {
    const order = Math.floor(j / 2) % 2 === 0 ? callers : [...callers].reverse();
    return order.map((c, i) => ({ c, target: targets[(i + j) % targets.length] }));
  });
  const results = await Promise.all(
    rounds.flat().map(({ c, target }) =>
      call("prekeys/fetch", { jwt: c.user.jwt, body: fetchBody(c, target, 1) })
    ),
  );
  const statuses = results.map((r) => r.status);
  assert.deepEqual([...new Set(statuses)].sort(), [200, 404], JSON.stringify(statuses));
  assert.equal(
    statuses.filter((s) => s === 200).length,
    callers.length,
    "one claim per caller of the shared target",
  );
  await closeAdmin();
});
