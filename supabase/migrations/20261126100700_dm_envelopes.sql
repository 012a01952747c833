/**
 * Direct messages: a mailbox of Signal envelopes per recipient device.
 *
 * Inserts happen only through the gateway (service_role, keyserver.send_dm_batch): every
 * envelope in a batch is checked and the batch is stored all-or-nothing. The sender must own
 * its active device; each recipient agent must pass the same hard-fact recheck as a prekey
 * fetch (a missing, ineligible or blocked recipient gets one uniform KS404
 * recipient_unavailable); recipient devices must be active (KS409 stale_devices, only ever said
 * to an eligible sender). message_type is a libsignal CiphertextMessageType: 2 SignalMessage,
 * 3 PreKeySignalMessage; nothing else is accepted. The recipient's owner pages through and
 * deletes (acknowledges) its own envelopes; nobody else can see them.
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('dm_body_max_bytes', '65536', 'Largest accepted envelope body in bytes (the column also has a hard 64 KiB check).', true),
  ('dm_batch_max', '100', 'Most envelopes in one send call.', true),
  ('dm_envelope_ttl', '"30 days"', 'Envelopes not acknowledged within this time are deleted by cleanup.', true)
on conflict (key) do nothing;

/** Section - table */

-- One Signal envelope for one recipient device.
create table if not exists public.dm_envelopes (
  id bigint generated always as identity primary key,
  to_user_id uuid not null,
  to_agent_id text not null,
  to_device_id integer not null,
  from_agent_id text not null,
  from_device_id integer not null,
  message_type smallint not null
    constraint dm_envelopes_signal_types check (message_type in (2, 3)),
  body bytea not null
    constraint dm_envelopes_body_size check (octet_length(body) between 1 and 65536),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  constraint dm_envelopes_expiry check (expires_at > created_at),
  constraint dm_envelopes_to_device_fkey foreign key (to_user_id, to_agent_id, to_device_id)
    references public.agent_devices (user_id, agent_id, device_id) on delete cascade,
  constraint dm_envelopes_from_device_fkey foreign key (from_agent_id, from_device_id)
    references public.agent_devices (agent_id, device_id) on delete cascade
);
comment on table public.dm_envelopes is
  'DM mailbox: Signal envelopes (type 2 SignalMessage | 3 PreKeySignalMessage) per recipient device. Inserted only by the gateway; the recipient''s owner reads and deletes (acknowledges) its own.';
-- Owner (RLS), recipient device foreign key and inbox paging by id.
create index if not exists dm_envelopes_inbox_idx
  on public.dm_envelopes (to_user_id, to_agent_id, to_device_id, id);
-- Per-recipient-device pending count (cap) without the owner.
create index if not exists dm_envelopes_recipient_idx
  on public.dm_envelopes (to_agent_id, to_device_id, expires_at);
create index if not exists dm_envelopes_from_idx on public.dm_envelopes (from_agent_id, from_device_id);
create index if not exists dm_envelopes_expires_idx on public.dm_envelopes (expires_at);

/** Section - row level security */

alter table public.dm_envelopes enable row level security;
revoke all on table public.dm_envelopes from anon, authenticated;
grant select, delete on table public.dm_envelopes to authenticated;

create policy dm_envelopes_select_recipient on public.dm_envelopes
  for select to authenticated
  using (to_user_id = (select auth.uid()));

create policy dm_envelopes_delete_recipient on public.dm_envelopes
  for delete to authenticated
  using (to_user_id = (select auth.uid()));

/** Section - send (gateway, service_role) */

-- One parsed envelope of a send batch.
do $$
begin
  if to_regtype('keyserver.dm_envelope_input') is null then
    create type keyserver.dm_envelope_input as (
      ord integer, to_agent_id text, to_device_id integer, message_type smallint, body bytea);
  end if;
end
$$;
comment on type keyserver.dm_envelope_input is 'One parsed envelope of keyserver.send_dm_batch.';

-- Stores a batch of envelopes from one of the sender's devices, all or nothing.
create or replace function keyserver.send_dm_batch(
  p_sender_user uuid,
  p_from_agent text,
  p_from_device integer,
  p_envelopes jsonb,
  p_now timestamptz default now()
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_max_body integer := keyserver.setting_int('dm_body_max_bytes');
  v_bad text;
  v_agent text;
  v_ids jsonb;
  v_batch keyserver.dm_envelope_input[];
begin
  if p_sender_user is null or p_from_agent is null or p_from_device is null
     or jsonb_typeof(p_envelopes) is distinct from 'array' then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'envelopes must be a JSON array of {to_agent_id, to_device_id, message_type, body (base64)}';
  end if;
  v_count := jsonb_array_length(p_envelopes);
  if v_count = 0 or v_count > keyserver.setting_int('dm_batch_max') then
    raise exception using errcode = 'KS400', message = 'batch_size',
      detail = format('%s envelopes; between 1 and %s per call', v_count, keyserver.setting_int('dm_batch_max'));
  end if;
  if not exists (select 1 from public.agent_devices d
                 where d.agent_id = p_from_agent and d.device_id = p_from_device
                   and d.user_id = p_sender_user and d.revoked_at is null) then
    raise exception using errcode = 'KS403', message = 'sender_device_not_owned';
  end if;

  begin
    select array_agg(row(e.ord::integer, e.v ->> 'to_agent_id', (e.v ->> 'to_device_id')::integer,
                         (e.v ->> 'message_type')::smallint, decode(e.v ->> 'body', 'base64'))::keyserver.dm_envelope_input
                     order by e.ord)
    into v_batch
    from jsonb_array_elements(p_envelopes) with ordinality as e(v, ord);
  exception when invalid_text_representation or numeric_value_out_of_range or invalid_parameter_value then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'to_device_id and message_type are integers, body is base64';
  end;
  select format('envelope %s', b.ord) into v_bad from unnest(v_batch) b
  where b.to_agent_id is null or b.to_device_id is null or b.message_type is null or b.body is null
  order by b.ord limit 1;
  if v_bad is not null then
    raise exception using errcode = 'KS400', message = 'invalid_argument', detail = v_bad || ' lacks a field';
  end if;
  select format('envelope %s has message_type %s', b.ord, b.message_type) into v_bad
  from unnest(v_batch) b where b.message_type not in (2, 3) order by b.ord limit 1;
  if v_bad is not null then
    raise exception using errcode = 'KS400', message = 'invalid_message_type',
      detail = v_bad || '; only 2 (SignalMessage) and 3 (PreKeySignalMessage) are accepted';
  end if;
  select format('envelope %s is %s bytes', b.ord, octet_length(b.body)) into v_bad
  from unnest(v_batch) b
  where octet_length(b.body) > v_max_body or octet_length(b.body) = 0 order by b.ord limit 1;
  if v_bad is not null then
    raise exception using errcode = 'KS413', message = 'body_too_large',
      detail = format('%s; bodies are 1..%s bytes', v_bad, v_max_body);
  end if;

  -- Each recipient agent: the same hard-fact recheck as a prekey fetch, one uniform refusal.
  for v_agent in select distinct b.to_agent_id from unnest(v_batch) b order by 1 loop
    if v_agent !~ '^[A-Za-z0-9._:-]{1,128}$'
       or not keyserver.facts_allow_contact(
         keyserver.contact_facts(p_sender_user, p_from_agent, v_agent, null, p_now)) then
      raise exception using errcode = 'KS404', message = 'recipient_unavailable',
        detail = 'the batch names a recipient that cannot receive messages from this sender';
    end if;
  end loop;

  -- Recipient devices must be active (told only to an eligible sender).
  select string_agg(format('%s/%s', b.to_agent_id, b.to_device_id), ', ' order by b.ord) into v_bad
  from unnest(v_batch) b
  where not exists (select 1 from public.agent_devices d
                    where d.agent_id = b.to_agent_id and d.device_id = b.to_device_id and d.revoked_at is null);
  if v_bad is not null then
    raise exception using errcode = 'KS409', message = 'stale_devices',
      detail = 'not active: ' || v_bad;
  end if;

  with ins as (
    insert into public.dm_envelopes
      (to_user_id, to_agent_id, to_device_id, from_agent_id, from_device_id, message_type, body, created_at, expires_at)
    select d.user_id, b.to_agent_id, b.to_device_id, p_from_agent, p_from_device, b.message_type, b.body,
           p_now, p_now + keyserver.setting_interval('dm_envelope_ttl')
    from unnest(v_batch) b
    join public.agent_devices d on d.agent_id = b.to_agent_id and d.device_id = b.to_device_id
    order by b.ord
    returning id
  )
  select jsonb_agg(ins.id order by ins.id) into v_ids from ins;
  return jsonb_build_object('accepted', jsonb_array_length(v_ids), 'ids', v_ids);
end;
$$;
comment on function keyserver.send_dm_batch(uuid, text, integer, jsonb, timestamptz) is
  'service_role (gateway): stores envelopes [{to_agent_id, to_device_id, message_type 2|3, body base64}] from the sender''s active device, all or nothing. Errors: KS400, KS403 sender_device_not_owned, KS404 recipient_unavailable (uniform), KS409 stale_devices, KS413 body_too_large, KS507 inbox_full. Returns {accepted, ids}.';

revoke all on function keyserver.send_dm_batch(uuid, text, integer, jsonb, timestamptz) from public, anon, authenticated;
grant execute on function keyserver.send_dm_batch(uuid, text, integer, jsonb, timestamptz) to service_role;

/** Section - inbox and acknowledge (gateway, as authenticated; security invoker) */

-- A page of the caller's envelopes for one of its devices, oldest first, after a cursor id.
create or replace function keyserver.dm_inbox(
  p_agent_id text,
  p_device_id integer,
  p_after_id bigint default 0,
  p_limit integer default 100
)
returns table (
  id bigint,
  from_agent_id text,
  from_device_id integer,
  message_type smallint,
  body bytea,
  created_at timestamptz
)
language sql
stable
set search_path = ''
as $$
  select e.id, e.from_agent_id, e.from_device_id, e.message_type, e.body, e.created_at
  from public.dm_envelopes e
  where e.to_user_id = (select auth.uid())
    and e.to_agent_id = p_agent_id
    and e.to_device_id = p_device_id
    and e.id > coalesce(p_after_id, 0)
    and e.expires_at > now()
  order by e.id
  limit least(greatest(coalesce(p_limit, 100), 1), 500)
$$;
comment on function keyserver.dm_inbox(text, integer, bigint, integer) is
  'As authenticated: up to p_limit (max 500) of the caller''s unexpired envelopes for one device with id > p_after_id, in id order.';

-- Acknowledges (deletes) some of the caller's envelopes for one device; returns how many.
create or replace function keyserver.dm_ack(p_agent_id text, p_device_id integer, p_ids bigint[])
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_deleted integer;
begin
  delete from public.dm_envelopes e
  where e.to_user_id = (select auth.uid())
    and e.to_agent_id = p_agent_id
    and e.to_device_id = p_device_id
    and e.id = any (p_ids);
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
comment on function keyserver.dm_ack(text, integer, bigint[]) is
  'As authenticated: deletes the listed envelopes of the caller''s device (others'' ids are ignored); returns the number deleted.';

revoke all on function keyserver.dm_inbox(text, integer, bigint, integer), keyserver.dm_ack(text, integer, bigint[])
  from public, anon, service_role;
grant execute on function keyserver.dm_inbox(text, integer, bigint, integer), keyserver.dm_ack(text, integer, bigint[])
  to authenticated;
