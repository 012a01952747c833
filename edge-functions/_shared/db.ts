// Postgres pools per isolate. The gateway connects as `authenticator` (like PostgREST) and
// assumes a role: per transaction for calls that need the caller's claims (RLS applies), or for
// a whole connection of the service pool, whose sessions start as `service_role` (the
// gateway-only key server functions take the caller's user id as an argument).

import postgres from "postgres";
import { HttpError } from "./http.ts";
import { intSetting } from "./settings.ts";

let pool: postgres.Sql | null = null;
let servicePool: postgres.Sql | null = null;

/**
 * Connections per pool. Small on purpose: a statement holds its connection only while Postgres
 * runs it, concurrent requests' statements queue and pipeline on the open connections, and more
 * backends than cores only add context switches. On the 2-core bench machine 2 to 4 connections
 * cost Postgres and the gateway less CPU per prekey fetch than 10 (BENCHMARKS.md, Gateway).
 */
const POOL_SIZE = intSetting("SPOTS_DB_POOL_SIZE", 4, 1, 64);

function open(role?: string, max = POOL_SIZE): postgres.Sql {
  const url = Deno.env.get("SUPABASE_DB_URL");
  if (!url) throw new Error("SUPABASE_DB_URL is not set");
  return postgres(url, {
    max,
    idle_timeout: 20,
    connect_timeout: 5,
    prepare: true,
    onnotice: () => {},
    ...(role ? { connection: { role } } : {}),
  });
}

/** The pool whose transactions assume a role per request (see `asRole`). */
export function db(): postgres.Sql {
  pool ??= open();
  return pool;
}

/** The pool whose sessions are `service_role`: for the gateway-only key server functions. */
export function serviceDb(): postgres.Sql {
  servicePool ??= open("service_role");
  return servicePool;
}

let fetchBatchPool: postgres.Sql | null = null;

/**
 * A `service_role` pool of `size` connections for the prekey fetch batches alone: with no more
 * batches in flight than connections, no other statement ever queues behind a batch on its
 * connection (postgres.js pipelines onto busy connections), where its timing would show when
 * the batch ended.
 */
export function fetchBatchDb(size: number): postgres.Sql {
  fetchBatchPool ??= open("service_role", size);
  return fetchBatchPool;
}

/** Ends the pools (scripts and tests that use these helpers outside the gateway). */
export async function closePools(): Promise<void> {
  await Promise.all([pool?.end(), servicePool?.end(), fetchBatchPool?.end()]);
  pool = null;
  servicePool = null;
  fetchBatchPool = null;
}

export type Role = "anon" | "authenticated" | "service_role";

/** Runs `work` in one transaction as `role`, with the request's claims visible to auth.uid(). */
export function asRole<T>(
  role: Role,
  claims: Record<string, unknown>,
  work: (sql: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return db().begin(async (sql) => {
    await sql`select set_config('role', ${role}, true),
                     set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
    return await work(sql);
  }) as Promise<T>;
}

/** HTTP status for the key server's SQLSTATEs (KSnnn; KS507 is a storage cap). */
const KEYSERVER_STATUS: Record<string, number> = {
  KS400: 400,
  KS401: 401,
  KS403: 403,
  KS404: 404,
  KS409: 409,
  KS413: 413,
  KS429: 429,
  KS507: 409,
};

/** Messages whose detail is safe and useful to return (said only to the caller about itself). */
const DETAIL_SHOWN = new Set([
  "stale_devices",
  "epoch_closed",
  "recipient_not_member",
  "batch_size",
]);

/**
 * Maps a key server error (raised with SQLSTATE KSnnn and a snake_case message) to an
 * HttpError with that message as its code; anything else propagates (and becomes a 500).
 */
export function keyserverError(error: unknown): unknown {
  if (error instanceof HttpError) return error;
  const e = error as { code?: string; message?: string; detail?: string };
  const status = e?.code ? KEYSERVER_STATUS[e.code] : undefined;
  if (!status) return error;
  const code = /^[a-z_]+$/.test(e.message ?? "") ? e.message! : "invalid_argument";
  const message = DETAIL_SHOWN.has(code) && e.detail ? e.detail : code.replaceAll("_", " ");
  return new HttpError(status, code, message);
}

/** Runs a query, translating key server errors. */
export async function keyserver<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw keyserverError(error);
  }
}
