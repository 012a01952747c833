/// <reference lib="deno.worker" />
// One isolate of the local gateway: every function under /functions/v1/<name>, the URL scheme
// hosted Supabase uses. Started by gateway.ts, once per worker.

import { handler as health } from "../health/handler.ts";
import { handler as prekeys } from "../prekeys/handler.ts";
import { handler as dm } from "../dm/handler.ts";
import { handler as communityKeys } from "../community-keys/handler.ts";
import { handler as ops } from "../ops/handler.ts";
import { errorResponse, HttpError } from "../_shared/http.ts";
import { port, workers } from "./gateway_config.ts";

const functions: Record<string, (req: Request) => Promise<Response>> = {
  health,
  prekeys,
  dm,
  "community-keys": communityKeys,
  ops,
};

Deno.serve({
  hostname: "127.0.0.1",
  port,
  reusePort: workers > 1,
  onListen: () => self.postMessage("listening"),
}, (req) => {
  const match = new URL(req.url).pathname.match(/^\/functions\/v1\/([a-z0-9-]+)(\/|$)/);
  const fn = match ? functions[match[1]] : undefined;
  if (!fn) return errorResponse(new HttpError(404, "not_found", "no such function"));
  return fn(req);
});
