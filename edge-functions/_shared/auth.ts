// Supabase JWT verification: HS256 with the project's secret (as local Supabase issues them),
// nothing else. Expired, unsigned (alg "none") and otherwise-signed tokens are refused; the
// `role` claim decides which Postgres role a request may assume.

import { errors, jwtVerify } from "jose";
import { HttpError } from "./http.ts";
import type { Role } from "./db.ts";

export type Caller = {
  role: Role;
  /** auth.users id (`sub`) for authenticated callers, else null. */
  userId: string | null;
  claims: Record<string, unknown>;
};

let secretKey: Promise<CryptoKey> | null = null;

/** The HMAC key, imported once per isolate (verify only, SHA-256 only). */
function secret(): Promise<CryptoKey> {
  if (secretKey) return secretKey;
  const text = Deno.env.get("SPOTS_JWT_SECRET");
  if (!text || text.length < 32) throw new Error("SPOTS_JWT_SECRET is not set (32+ characters)");
  secretKey = crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(text),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  return secretKey;
}

const ROLES = new Set<Role>(["anon", "authenticated", "service_role"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Tokens that verified, until their `exp`: the same bytes always verify the same way, so a
 * repeat skips the HMAC (about half a millisecond of WebCrypto per request). Bounded; cleared
 * when full. Failures are never cached.
 */
const verified = new Map<string, { claims: Record<string, unknown>; exp: number }>();
const VERIFIED_MAX = 10_000;

/** Verifies the bearer token of a request. */
export async function authenticate(req: Request): Promise<Caller> {
  const header = req.headers.get("authorization") ?? "";
  const match = header.match(/^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i);
  if (!match) throw new HttpError(401, "missing_token", "a Bearer token is required");
  const cached = verified.get(match[1]);
  if (cached && Date.now() / 1000 < cached.exp) return caller(cached.claims);
  if (cached) verified.delete(match[1]);
  let claims: Record<string, unknown>;
  try {
    const result = await jwtVerify(match[1], await secret(), {
      algorithms: ["HS256"],
      requiredClaims: ["exp"],
      clockTolerance: 5,
    });
    claims = result.payload as Record<string, unknown>;
  } catch (error) {
    if (error instanceof errors.JWTExpired) {
      throw new HttpError(401, "token_expired", "the token has expired");
    }
    throw new HttpError(401, "invalid_token", "the token is not valid");
  }
  const who = caller(claims);
  if (verified.size >= VERIFIED_MAX) verified.clear();
  verified.set(match[1], { claims, exp: Number(claims.exp) });
  return who;
}

function caller(claims: Record<string, unknown>): Caller {
  const role = claims.role as Role;
  if (!ROLES.has(role)) throw new HttpError(401, "invalid_token", "the token has no valid role");
  const sub = typeof claims.sub === "string" && UUID.test(claims.sub) ? claims.sub : null;
  if (role === "authenticated" && !sub) {
    throw new HttpError(401, "invalid_token", "the token has no valid subject");
  }
  return { role, userId: role === "authenticated" ? sub : null, claims };
}

/** A signed-in user: its id. */
export async function authenticateUser(req: Request): Promise<Caller & { userId: string }> {
  const caller = await authenticate(req);
  if (caller.role !== "authenticated" || !caller.userId) {
    throw new HttpError(403, "forbidden", "a signed-in user is required");
  }
  return caller as Caller & { userId: string };
}

/** The service role (operators, jobs). */
export async function authenticateService(req: Request): Promise<Caller> {
  const caller = await authenticate(req);
  if (caller.role !== "service_role") {
    throw new HttpError(403, "forbidden", "the service role is required");
  }
  return caller;
}
