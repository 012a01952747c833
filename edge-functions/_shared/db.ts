// One Postgres pool per isolate. The gateway connects as `authenticator` (like PostgREST) and
// assumes a role per transaction, so RLS and grants apply exactly as for API requests.

import postgres from "postgres";

let pool: postgres.Sql | null = null;

export function db(): postgres.Sql {
  if (pool) return pool;
  const url = Deno.env.get("SUPABASE_DB_URL");
  if (!url) throw new Error("SUPABASE_DB_URL is not set");
  pool = postgres(url, {
    max: Number(Deno.env.get("SPOTS_DB_POOL_SIZE") ?? "10"),
    idle_timeout: 20,
    connect_timeout: 5,
    prepare: true,
    onnotice: () => {},
  });
  return pool;
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
