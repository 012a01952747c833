/**
 * The prekey fetch batch looks rows up by index, whatever the size of the tables.
 *
 * keyserver.gateway_prekey_fetch_batch runs on a generic plan (set plan_cache_mode), built once
 * per connection from the statistics of that moment. While agents, agent_devices and
 * community_members are a few pages, as on a new deployment and in the gateway bench, the
 * planner reads them whole for each of its lookups (a sequential scan of a few hundred rows,
 * each compared as text) instead of probing their primary key: about 20% of the batch's
 * Postgres CPU with 400 agents (pgbench, batches of 12), and the plan kept that shape as the
 * tables grew until the connection ended. Every lookup of the batch is a point or a short
 * range of an index, so sequential scans are switched off for it.
 *
 * keyserver.gateway_prekey_fetch (one fetch with an invite) makes the same lookups.
 */

alter function keyserver.gateway_prekey_fetch_batch(jsonb, timestamptz) set enable_seqscan = off;
alter function keyserver.gateway_prekey_fetch(uuid, text, integer, text, integer, text, timestamptz)
  set enable_seqscan = off;
