// Local stand-in for Supabase's edge runtime: one Deno process serving every function under
// /functions/v1/<name>, the URL scheme hosted Supabase uses. Not deployed (underscore folder).

import { handler as health } from "../health/handler.ts";
import { handler as prekeys } from "../prekeys/handler.ts";
import { handler as dm } from "../dm/handler.ts";
import { handler as communityKeys } from "../community-keys/handler.ts";
import { handler as ops } from "../ops/handler.ts";
import { errorResponse, HttpError } from "../_shared/http.ts";

const functions: Record<string, (req: Request) => Promise<Response>> = {
  health,
  prekeys,
  dm,
  "community-keys": communityKeys,
  ops,
};

const port = Number(Deno.env.get("SPOTS_GATEWAY_PORT") ?? "54321");

Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (req) => {
  const match = new URL(req.url).pathname.match(/^\/functions\/v1\/([a-z0-9-]+)(\/|$)/);
  const fn = match ? functions[match[1]] : undefined;
  if (!fn) return errorResponse(new HttpError(404, "not_found", "no such function"));
  return fn(req);
});
console.log(`gateway listening on 127.0.0.1:${port}`);
