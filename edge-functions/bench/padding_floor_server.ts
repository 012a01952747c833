/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// Worker for the "floor" phase of ./x bench gateway: a server that does nothing but what every
// prekey fetch answer must do anyway (read the JSON body, hold the answer for the minimum
// answer time, send about as many bytes as a fetch answer). The rate the load generator gets
// from it is the most the gateway could serve at that minimum on this machine.

import { padUntil } from "../_shared/padding.ts";

const answer = JSON.stringify({ bundles: "x".repeat(4000) });

const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  const started = performance.now();
  await req.json();
  await padUntil(started);
  return new Response(answer, { headers: { "content-type": "application/json" } });
});

self.postMessage({ port: server.addr.port });
self.onmessage = async () => {
  await server.shutdown();
  self.close();
};
