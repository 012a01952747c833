// Request fields: every body (and the query of GET routes) names the caller's own agent and
// device; targets and payloads are checked for shape here before anything reaches the WASM core
// or Postgres.

import { Buffer } from "node:buffer";
import { HttpError } from "./http.ts";

const AGENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function bad(field: string, what: string): never {
  throw new HttpError(400, "invalid_request", `${field} ${what}`);
}

export function agentId(value: unknown, field = "agent_id"): string {
  if (typeof value !== "string" || !AGENT_ID.test(value)) {
    bad(field, "must be 1..128 characters of [A-Za-z0-9._:-]");
  }
  return value;
}

export function deviceId(value: unknown, field = "device_id"): number {
  const n = typeof value === "string" && /^[0-9]{1,3}$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 127) {
    bad(field, "must be an integer 1..127");
  }
  return n;
}

export function uuid(value: unknown, field: string): string {
  if (typeof value !== "string" || !UUID.test(value)) bad(field, "must be a UUID");
  return value.toLowerCase();
}

export function integer(value: unknown, field: string, min: number, max: number): number {
  const n = typeof value === "string" && /^-?[0-9]{1,16}$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min || n > max) {
    bad(field, `must be an integer ${min}..${max}`);
  }
  return n;
}

export function optionalString(value: unknown, field: string, maxLength: number): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || value.length < 1 || value.length > maxLength) {
    bad(field, `must be a string of 1..${maxLength} characters`);
  }
  return value;
}

export function array(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) bad(field, "must be an array");
  return value;
}

export function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    bad(field, "must be an object");
  }
  return value as Record<string, unknown>;
}

/** Standard base64 to bytes (strict alphabet and padding). */
export function base64(value: unknown, field: string, maxBytes: number): Uint8Array {
  if (
    typeof value !== "string" || value.length === 0 || value.length % 4 !== 0 ||
    !BASE64.test(value)
  ) {
    bad(field, "must be standard base64");
  }
  if ((value.length / 4) * 3 > maxBytes + 2) {
    throw new HttpError(413, "too_large", `${field} exceeds ${maxBytes} bytes`);
  }
  const bytes = Buffer.from(value, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** The caller's own agent and device from a body or a query. */
export function self(source: Record<string, unknown>): { agentId: string; deviceId: number } {
  return { agentId: agentId(source.agent_id), deviceId: deviceId(source.device_id) };
}

export function query(req: Request): Record<string, unknown> {
  return Object.fromEntries(new URL(req.url).searchParams.entries());
}
