// GET /health: the core version, the WASM known-answer self-check, and database reachability.

import { json } from "../_shared/http.ts";
import { makeHandler, methodNotAllowed, notFound } from "../_shared/serve.ts";
import { core } from "../_shared/wasm.ts";
import { db } from "../_shared/db.ts";

async function databaseReachable(): Promise<boolean> {
  try {
    const rows = await db()`select 1 as ok`;
    return rows[0]?.ok === 1;
  } catch {
    return false;
  }
}

export const handler = makeHandler("health", async (req, route) => {
  if (route !== "") notFound();
  if (req.method !== "GET") methodNotAllowed();
  const selfCheck = core.selfCheck() as {
    ok: boolean;
    checks: { name: string; passed: boolean }[];
  };
  const database = await databaseReachable();
  const ok = selfCheck.ok && database;
  return json(
    {
      status: ok ? "ok" : "degraded",
      core_version: core.coreVersion(),
      self_check: selfCheck,
      database,
    },
    ok ? 200 : 503,
  );
});
