// ./x bench gateway: load on the running local stack (loopback only, bounded in time and count).
//
// 1. WASM validation cost inside Deno: validatePrekeyUpload on a full upload (100 one-time
//    bundles + the last-resort bundle), per bundle; validateSignalMessage per message.
// 2. POST prekeys/fetch at 16 concurrent connections for SPOTS_BENCH_SECONDS (default 20):
//    16 callers, 64 eligible target agents with 1000 one-time bundles each (inserted in SQL).
// 3. POST dm/send (one genuine PreKey message per batch) at 16 connections, same duration.
//
// Rate limits, stock and inbox caps are raised in keyserver.settings for the run and restored.
// After the bulk insert the bundle table is vacuumed and analysed and a checkpoint is taken, so
// the fetch phase does not measure the aftermath of the setup (autovacuum of 64,000 fresh rows).
// Prints req/s, p50, p99 and errors for each phase, and where the CPU went during it (from /proc:
// the stack's Postgres processes, the gateway, this load generator, everything else), per
// request. SPOTS_BENCH_PHASES selects phases (default "fetch,send").
//
// Phases 2 and 3 send pre-encoded requests over bench/http1_client.ts, one keep-alive connection
// per worker, not fetch(): fetch() cost the load generator ~0.3 ms of CPU per request, taken from
// the gateway and Postgres on the same cores.

import { core } from "../_shared/wasm.ts";
import { encodeRequest, Http1Client } from "./http1_client.ts";
import {
  admin,
  b64,
  closeAdmin,
  env,
  genuineMessage,
  newUser,
  percentile,
  publishedDevice,
  shareCommunity,
  sqlMember,
  withSettings,
} from "../tests/support.ts";

const SECONDS = Number(Deno.env.get("SPOTS_BENCH_SECONDS") ?? "20");
const CONNECTIONS = Number(Deno.env.get("SPOTS_BENCH_CONNECTIONS") ?? "16");
const MAX_REQUESTS = 200_000;
const PHASES = new Set((Deno.env.get("SPOTS_BENCH_PHASES") ?? "fetch,send").split(","));
const TARGETS = 64;
const STOCK = 1000;

function wasmCost(): void {
  const device = core.Device.create("bench-wasm", 1);
  const upload = device.ensureReady(Date.now()).upload;
  const runs = 20;
  core.validatePrekeyUpload(upload, Date.now()); // warm-up
  const t0 = performance.now();
  let bundles = 0;
  for (let i = 0; i < runs; i++) {
    const rows = core.validatePrekeyUpload(upload, Date.now());
    bundles += rows.oneTime.length + 1;
  }
  const uploadMs = (performance.now() - t0) / runs;
  const message = genuineMessage();
  const n = 2000;
  const t1 = performance.now();
  for (let i = 0; i < n; i++) core.validateSignalMessage(message.messageType, message.body);
  const messageUs = ((performance.now() - t1) / n) * 1000;
  const facts = {
    blocked_by_caller: false,
    blocked_by_target: false,
    shared_communities: ["c"],
    thresholds: { min_entanglement_score: 0.5, min_compatibility_score: 0.5 },
  };
  const t2 = performance.now();
  for (let i = 0; i < n; i++) core.evaluateEligibility(facts);
  const policyUs = ((performance.now() - t2) / n) * 1000;
  console.log(
    `wasm: validatePrekeyUpload ${uploadMs.toFixed(1)} ms per upload of ${
      bundles / runs
    } bundles = ${(uploadMs / (bundles / runs)).toFixed(3)} ms per bundle (${
      (upload.length / 1024).toFixed(0)
    } KiB JSON); validateSignalMessage (type ${message.messageType}, ${message.body.length} B) ${
      messageUs.toFixed(1)
    } µs; evaluateEligibility ${policyUs.toFixed(1)} µs`,
  );
}

type Result = {
  latencies: number[];
  errors: Map<number, number>;
  // Beyond one per worker: the gateway closed keep-alive connections.
  reconnects: number;
  seconds: number;
  cpu: CpuUse | null;
};

// CPU accounting from /proc (Linux), read by scripts/cpu_ticks.sh (Deno reads /proc only with
// --allow-all): clock ticks of the stack's Postgres (the postmaster named by SPOTS_BENCH_PG_PID
// and its children: backends, autovacuum, checkpointer, ...), the gateway
// (SPOTS_BENCH_GATEWAY_PID), this process, and the whole machine. Backends that exit during a
// phase still count (the postmaster's reaped-children time).
type CpuSample = { pg: number; gateway: number; self: number; busy: number; idle: number };
type CpuUse = CpuSample & { seconds: number };
const TICKS_PER_SECOND = 100;
const CPU_TICKS = new URL("../../scripts/cpu_ticks.sh", import.meta.url).pathname;

async function cpuSample(): Promise<CpuSample | null> {
  const pgPid = Deno.env.get("SPOTS_BENCH_PG_PID");
  const gatewayPid = Deno.env.get("SPOTS_BENCH_GATEWAY_PID");
  if (!pgPid || !gatewayPid) return null;
  const out = await new Deno.Command(CPU_TICKS, { args: [pgPid, gatewayPid, String(Deno.pid)] })
    .output();
  if (!out.success) return null;
  const [pg, gateway, self, busy, idle] = new TextDecoder().decode(out.stdout).trim().split(" ")
    .map(Number);
  return { pg, gateway, self, busy, idle };
}

async function cpuSince(before: CpuSample | null, seconds: number): Promise<CpuUse | null> {
  const after = await cpuSample();
  if (!before || !after) return null;
  return {
    pg: after.pg - before.pg,
    gateway: after.gateway - before.gateway,
    self: after.self - before.self,
    busy: after.busy - before.busy,
    idle: after.idle - before.idle,
    seconds,
  };
}

// makeRequest(worker) hands out bytes encoded before the phase starts, so what the generator
// spends per request is a socket write and a response parse.
async function load(makeRequest: (worker: number) => () => Uint8Array): Promise<Result> {
  const server = new URL(env("GATEWAY_URL"));
  const latencies: number[] = [];
  const errors = new Map<number, number>();
  const cpuBefore = await cpuSample();
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  let issued = 0;
  let reconnects = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, worker) => {
      const nextRequest = makeRequest(worker);
      const client = Http1Client.forUrl(server);
      try {
        while (performance.now() < deadline && issued < MAX_REQUESTS) {
          issued++;
          const request = nextRequest();
          const t = performance.now();
          const { status } = await client.request(request);
          latencies.push(performance.now() - t);
          if (status !== 200) errors.set(status, (errors.get(status) ?? 0) + 1);
        }
      } finally {
        client.close();
        reconnects += Math.max(0, client.connections - 1);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { latencies, errors, reconnects, seconds, cpu: await cpuSince(cpuBefore, seconds) };
}

function report(name: string, r: Result): void {
  const errors = [...r.errors.entries()].map(([s, n]) => `${n}x${s}`).join(" ") || "none";
  console.log(
    `${name}: ${r.latencies.length} requests in ${r.seconds.toFixed(1)} s = ${
      (r.latencies.length / r.seconds).toFixed(0)
    } req/s, p50 ${percentile(r.latencies, 50).toFixed(2)} ms, p99 ${
      percentile(r.latencies, 99).toFixed(2)
    } ms, non-200: ${errors} (${CONNECTIONS} connections${
      r.reconnects ? `, ${r.reconnects} reconnects` : ""
    })`,
  );
  if (!r.cpu) return;
  // Ticks are 10 ms; per request in ms of CPU time, and as cores busy on average.
  const n = r.latencies.length;
  const perRequest = (ticks: number) => ((ticks * 1000) / TICKS_PER_SECOND / n).toFixed(3);
  const cores = (ticks: number) => (ticks / TICKS_PER_SECOND / r.cpu!.seconds).toFixed(2);
  const other = r.cpu.busy - r.cpu.pg - r.cpu.gateway - r.cpu.self;
  console.log(
    `${name} cpu per request: postgres ${perRequest(r.cpu.pg)} ms, gateway ${
      perRequest(r.cpu.gateway)
    } ms, load generator ${perRequest(r.cpu.self)} ms, rest of the machine ${
      perRequest(Math.max(0, other))
    } ms; cores busy: postgres ${cores(r.cpu.pg)}, gateway ${
      cores(r.cpu.gateway)
    }, load generator ${cores(r.cpu.self)}, other ${cores(Math.max(0, other))}, idle ${
      cores(r.cpu.idle)
    }`,
  );
}

async function main(): Promise<void> {
  wasmCost();
  const url = (path: string) => new URL(`${env("GATEWAY_URL")}/functions/v1/${path}`);
  const headers = (jwt: string) => ({
    authorization: `Bearer ${jwt}`,
    "content-type": "application/json",
  });

  // Callers and targets.
  const callers: Awaited<ReturnType<typeof sqlMember>>[] = [];
  for (let i = 0; i < CONNECTIONS; i++) callers.push(await sqlMember("bench-c"));
  const targetUser = await newUser("bench-t");
  const source = await publishedDevice(targetUser);
  const [bundle] = await admin()`select bundle_json from public.signal_prekey_bundles_v2
    where agent_id = ${source.agentId} and kind = 'one_time' limit 1`;
  const targets: string[] = [];
  for (let i = 0; i < TARGETS; i++) targets.push(`${targetUser.tag}-t${i}`);
  await shareCommunity(targetUser, ...callers.map((c) => c.user));

  await withSettings({
    prekey_fetch_pair_capacity: 10_000_000,
    prekey_fetch_caller_capacity: 10_000_000,
    prekey_device_cap: 10_000_000,
    dm_send_capacity: 10_000_000,
    dm_pending_cap: 10_000_000,
  }, async () => {
    for (const agent of targets) {
      await admin()`insert into public.agents (agent_id, user_id) values (${agent}, ${targetUser.id})`;
      await admin()`insert into public.agent_devices (agent_id, device_id, user_id, registration_id,
        identity_key) select ${agent}, 1, ${targetUser.id}, 7, identity_key from public.agent_devices
        where agent_id = ${source.agentId} and device_id = 1`;
      await admin()`insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id,
        key_id, kind, bundle_json) select ${targetUser.id}, ${agent}, 1, k, 'one_time',
        ${bundle.bundle_json} from generate_series(1, ${STOCK}) k`;
    }
    // The bulk insert above leaves 64,000 fresh rows for autovacuum; settle that first.
    await admin()`vacuum (analyze) public.signal_prekey_bundles_v2`;
    await admin()`checkpoint`;
    if (PHASES.has("fetch")) await fetchPhase();
    if (PHASES.has("send")) await sendPhase();
  });
  await closeAdmin();

  async function fetchPhase(): Promise<void> {
    const fetches = await load((worker) => {
      const caller = callers[worker];
      // Only the target varies, so every request this worker will send is encoded up front.
      const requests = targets.map((target) =>
        encodeRequest(
          "POST",
          url("prekeys/fetch"),
          headers(caller.user.jwt),
          JSON.stringify({
            agent_id: caller.agentId,
            device_id: 1,
            target_agent_id: target,
            target_device_id: 1,
          }),
        )
      );
      let i = worker;
      return () => requests[(i++) % TARGETS];
    });
    report("prekeys/fetch", fetches);
  }

  async function sendPhase(): Promise<void> {
    const message = genuineMessage();
    const sends = await load((worker) => {
      const caller = callers[worker];
      const body = JSON.stringify({
        agent_id: caller.agentId,
        device_id: 1,
        envelopes: [{
          to_agent_id: targets[worker % TARGETS],
          to_device_id: 1,
          message_type: message.messageType,
          body: b64(message.body),
        }],
      });
      const request = encodeRequest("POST", url("dm/send"), headers(caller.user.jwt), body);
      return () => request;
    });
    report("dm/send", sends);
  }
}

await main();
