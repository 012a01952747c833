// Rate limits: the key server's leaky buckets (keyserver.consume_rate_limit) published as
// RateLimit-Limit / -Remaining / -Reset headers; 429 with Retry-After when exceeded.

import { HttpError } from "./http.ts";

export type RateLimitState = {
  allowed: boolean;
  capacity: number;
  remaining: number;
  reset_seconds: number;
  retry_after_seconds: number;
};

export function rateLimitHeaders(state: RateLimitState): Record<string, string> {
  return {
    "RateLimit-Limit": String(state.capacity),
    "RateLimit-Remaining": String(Math.max(0, state.remaining)),
    "RateLimit-Reset": String(state.reset_seconds),
  };
}

/** The 429 for a bucket that refused. */
export function rateLimited(state: RateLimitState): HttpError {
  return new HttpError(429, "rate_limited", "too many requests", {
    ...rateLimitHeaders(state),
    "Retry-After": String(Math.max(1, state.retry_after_seconds)),
  });
}

/** Throws the 429 for a bucket that refused; otherwise the headers to send. */
export function enforce(state: RateLimitState): Record<string, string> {
  if (!state.allowed) throw rateLimited(state);
  return rateLimitHeaders(state);
}
