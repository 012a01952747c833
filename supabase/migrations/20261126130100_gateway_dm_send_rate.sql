/**
 * Gateway: the DM send rate limit as key server settings, so operators tune it like the
 * prekey-fetch limits. The gateway consumes one unit per envelope from the bucket
 * dm_send:caller:<user> (keyserver.consume_rate_limit) before it checks recipients.
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('dm_send_capacity', '600', 'Envelopes one user may send per dm_send_refill (each envelope costs one).', true),
  ('dm_send_refill', '"1 minute"', 'Refill interval of the per-user DM send bucket.', true)
on conflict (key) do nothing;
