/**
 * The one-time bundle claim always walks the claim index.
 *
 * The claim asks for the device's unconsumed one-time bundle with the earliest expiry (ORDER BY
 * expires_at LIMIT 1). Written "consumed = false", that also matches the partial expiry index
 * (expires_at WHERE NOT consumed), whose order is the ORDER BY, and PostgreSQL's generic plan for
 * the PL/pgSQL statement (used after the first five calls of a session, when it looks no more
 * expensive) took it: it then walks every device's unconsumed bundles in expiry order until it
 * meets one of this device's. Bundles uploaded together share an expiry, so that is every
 * bundle uploaded before the device's own: about 4 ms a claim with the bench's 250,000 bundles
 * (pgbench), growing with the table. As "consumed <= false" (the same rows: consumed is NOT
 * NULL) the expiry index no longer applies, and ordering by (consumed, expires_at) is the claim
 * index's own order after (agent_id, device_id), so its scan stops at the first row it can lock.
 * keyserver.gateway_prekey_fetch_batch (20261129090000) claims the same way.
 */

create or replace function keyserver.claim_prekey_bundles(
  p_target_agent text,
  p_target_device integer,
  p_now timestamptz
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  d record;
  v_id bigint;
  v_key integer;
  v_kind text;
  v_bundle jsonb;
  v_out jsonb := '[]'::jsonb;
begin
  for d in
    select ad.device_id, ad.registration_id, ad.identity_key
    from public.agent_devices ad
    where ad.agent_id = p_target_agent
      and ad.revoked_at is null
      and (p_target_device is null or ad.device_id = p_target_device)
    order by ad.device_id
  loop
    update public.signal_prekey_bundles_v2 b
    set consumed = true, consumed_at = p_now
    where b.id = (
      select c.id from public.signal_prekey_bundles_v2 c
      where c.agent_id = p_target_agent
        and c.device_id = d.device_id
        and c.consumed <= false -- see above: not "= false"
        and c.expires_at > p_now
        and c.kind = 'one_time'
      order by c.consumed, c.expires_at
      limit 1
      for update skip locked)
    returning b.id, b.key_id, b.kind, b.bundle_json into v_id, v_key, v_kind, v_bundle;

    if v_id is null then
      select b.id, b.key_id, b.kind, b.bundle_json into v_id, v_key, v_kind, v_bundle
      from public.signal_prekey_bundles_v2 b
      where b.agent_id = p_target_agent
        and b.device_id = d.device_id
        and b.kind = 'last_resort'
        and b.consumed = false
        and b.expires_at > p_now
      limit 1;
      if v_id is not null then
        insert into keyserver.last_resort_claims (agent_id, device_id, key_id, claimed_at)
        values (p_target_agent, d.device_id, v_key, p_now);
      end if;
    end if;

    if v_id is not null then
      v_out := v_out || jsonb_build_array(jsonb_build_object(
        'device_id', d.device_id,
        'registration_id', d.registration_id,
        'identity_key', encode(d.identity_key, 'base64'),
        'kind', v_kind,
        'key_id', v_key,
        'bundle', v_bundle));
    end if;
    v_id := null;
  end loop;
  return v_out;
end;
$$;
comment on function keyserver.claim_prekey_bundles(text, integer, timestamptz) is
  'Internal: claims one one-time bundle per active target device (FOR UPDATE SKIP LOCKED, marked consumed), else the last-resort bundle (logged). Returns [{device_id, registration_id, identity_key, kind, key_id, bundle}].';
