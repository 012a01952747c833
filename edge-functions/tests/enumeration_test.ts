// Enumeration: a missing, an ineligible, a blocked and an eligible-but-empty target get the same
// status and the same body bytes, and take the same time (p50 difference under 5 ms over 200
// requests each, interleaved). Rate limits: RateLimit headers count down per caller -> target
// and the 11th fetch within the hour gets 429 with Retry-After, for missing targets as well.
import assert from "node:assert/strict";
import {
  admin,
  call,
  closeAdmin,
  fetchBody,
  newUser,
  percentile,
  shareCommunity,
  sqlMember,
} from "./support.ts";

Deno.test("missing, ineligible, blocked and empty targets are indistinguishable", async () => {
  const n = 200;
  const callers = {
    missing: await sqlMember("enm"),
    ineligible: await sqlMember("eni"),
    blocked: await sqlMember("enb"),
    empty: await sqlMember("ene"),
  };
  // 200 target agents of one stranger (no devices needed: nothing must leak either way).
  const stranger = await newUser("stranger");
  const friend = await newUser("friend");
  const targets = { missing: [], ineligible: [], blocked: [], empty: [] } as Record<
    keyof typeof callers,
    string[]
  >;
  for (let i = 0; i < n; i++) {
    targets.missing.push(`${stranger.tag}-missing-${i}`);
    targets.ineligible.push(`${stranger.tag}-t${i}`);
    targets.blocked.push(`${stranger.tag}-t${i}`);
    targets.empty.push(`${friend.tag}-t${i}`);
  }
  await admin()`insert into public.agents ${
    admin()(targets.ineligible.map((agent_id) => ({ agent_id, user_id: stranger.id })))
  }`;
  await admin()`insert into public.agents ${
    admin()(targets.empty.map((agent_id) => ({ agent_id, user_id: friend.id })))
  }`;
  // The blocked caller is blocked by the stranger (every agent of theirs is the same user).
  await admin()`insert into public.user_blocks (blocker_user_id, blocked_agent_id)
    values (${stranger.id}, ${callers.blocked.agentId})`;
  // The empty-target caller is eligible (a shared community) but the agents have no devices.
  await shareCommunity(friend, callers.empty.user);

  const kinds = Object.keys(callers) as (keyof typeof callers)[];
  const times: Record<string, number[]> = { missing: [], ineligible: [], blocked: [], empty: [] };
  const answers = new Map<string, Set<string>>();
  for (let i = 0; i < n; i++) {
    for (const kind of kinds) {
      const from = callers[kind];
      const started = performance.now();
      const r = await call("prekeys/fetch", {
        jwt: from.user.jwt,
        body: fetchBody(from, targets[kind][i]),
      });
      times[kind].push(performance.now() - started);
      const key = `${r.status} ${r.text} ${r.headers.get("ratelimit-limit")} ${
        r.headers.get("ratelimit-remaining")
      }`;
      if (!answers.has(kind)) answers.set(kind, new Set());
      answers.get(kind)!.add(key);
    }
  }
  // One answer per kind, and the same answer for every kind.
  const distinct = new Set([...answers.values()].flatMap((s) => [...s]));
  assert.equal(distinct.size, 1, [...distinct].join("\n"));
  const [only] = distinct;
  assert.match(only, /^404 \{"error":\{"code":"target_unavailable",/);

  const p50 = Object.fromEntries(kinds.map((k) => [k, percentile(times[k], 50)]));
  const spread = Math.max(...Object.values(p50)) - Math.min(...Object.values(p50));
  console.log(
    `fetch p50 ms: ${kinds.map((k) => `${k} ${p50[k].toFixed(2)}`).join(", ")}; ` +
      `spread ${spread.toFixed(2)} ms`,
  );
  assert.ok(spread < 5, `p50 spread ${spread} ms`);
  // The gateway's minimum refusal time (its default; the stack does not set one) holds for
  // every refusal, not only on average.
  const fastest = Math.min(...Object.values(times).flat());
  assert.ok(fastest >= 8, `an answer came after ${fastest.toFixed(2)} ms`);
});

Deno.test("fetch rate limits per caller and target, with headers, also for missing targets", async () => {
  const caller = await sqlMember("rl");
  for (const target of [`nobody-${crypto.randomUUID()}`, `other-${crypto.randomUUID()}`]) {
    for (let i = 1; i <= 10; i++) {
      const r = await call("prekeys/fetch", {
        jwt: caller.user.jwt,
        body: fetchBody(caller, target),
      });
      assert.equal(r.status, 404);
      assert.equal(r.headers.get("ratelimit-limit"), "10");
      assert.equal(r.headers.get("ratelimit-remaining"), String(10 - i));
      assert.ok(Number(r.headers.get("ratelimit-reset")) > 0);
    }
    const limited = await call("prekeys/fetch", {
      jwt: caller.user.jwt,
      body: fetchBody(caller, target),
    });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, "rate_limited");
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    assert.equal(limited.headers.get("ratelimit-remaining"), "0");
  }
  await closeAdmin();
});
