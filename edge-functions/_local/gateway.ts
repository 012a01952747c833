// Local stand-in for Supabase's edge runtime: one Deno process serving every function under
// /functions/v1/<name>, the URL scheme hosted Supabase uses. Not deployed (underscore folder).
//
// Like the hosted runtime it runs several isolates (SPOTS_GATEWAY_WORKERS, default 2), each a
// worker with its own event loop, database pools and fetch batcher, listening on the same port
// (SO_REUSEPORT; the kernel spreads connections over them). With one isolate, Postgres waited
// while the isolate handled a burst of answers and requests, and a third of the 2-core bench
// machine stayed idle (BENCHMARKS.md, Gateway). Everything the isolates share is in Postgres,
// whose functions are safe for any number of gateway processes.

import { port, workers } from "./gateway_config.ts";

let listening = 0;
for (let i = 0; i < workers; i++) {
  const worker = new Worker(new URL("./gateway_worker.ts", import.meta.url).href, {
    type: "module",
  });
  // A worker that fails (a bad setting, a port another program holds) stops the gateway: half
  // a gateway would look healthy to a probe that reached the other half. `./x stack` waits for
  // the line below, printed once every worker listens.
  worker.onerror = (event) => {
    event.preventDefault();
    console.error(`gateway: a worker failed (${event.message})`);
    Deno.exit(1);
  };
  worker.onmessage = () => {
    if (++listening === workers) {
      console.log(`gateway listening on 127.0.0.1:${port} (${workers} workers)`);
    }
  };
}
