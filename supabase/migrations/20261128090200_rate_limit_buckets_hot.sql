/**
 * Rate-limit buckets updated in place.
 *
 * Every prekey fetch writes two bucket rows and every DM send one. With an index on updated_at
 * (which every write changes), none of those updates could be HOT: each wrote a new index entry
 * in the primary key and in that index, a caller's bucket row collected one dead version and two
 * dead index entries per request, and every lookup of the key walked past them. Measured with
 * pgbench calling keyserver.gateway_prekey_fetch like the gateway (4 clients, 2 cores): 1.10 ms
 * of Postgres CPU per fetch with the index, 0.80 ms without it (BENCHMARKS.md, Gateway).
 *
 *   - The updated_at index goes: only keyserver.cleanup_abuse_state reads
 *     updated_at, a batch job that may scan the table.
 *   - Pages keep half their space free, so the new version of a row fits on its page (HOT
 *     needs that). Takes effect for pages written from now on.
 *   - The level and capacity CHECK constraints go: PostgreSQL parses and prepares every CHECK
 *     expression again for each UPDATE statement it runs, whatever the row, and these two guard
 *     values that the table's only writers (keyserver.consume_rate_limit and
 *     keyserver.gateway_prekey_fetch, no role has any privilege on the table) already validate
 *     (capacity >= 1, raised as KS400) or compute (level = greatest(0, ...) + cost). The key
 *     CHECK stays: consume_rate_limit takes its key from the caller.
 */

drop index if exists keyserver.rate_limit_buckets_updated_idx;

alter table keyserver.rate_limit_buckets set (fillfactor = 50);

alter table keyserver.rate_limit_buckets
  drop constraint if exists rate_limit_buckets_level_check,
  drop constraint if exists rate_limit_buckets_capacity_check;
