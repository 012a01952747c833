// ops: Prometheus text metrics from the key server's monitoring views (service role only).
// Aggregates only: no agent ids, keys, ciphertext or user ids leave this endpoint.
//
//   GET ops/metrics

import { corsHeaders } from "../_shared/http.ts";
import { makeHandler, methodNotAllowed, notFound } from "../_shared/serve.ts";
import { serviceDb } from "../_shared/db.ts";
import { authenticateService } from "../_shared/auth.ts";

type Metric = { name: string; help: string; type: "gauge" | "counter"; samples: Sample[] };
type Sample = { labels?: Record<string, string>; value: number };

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

export function render(metrics: Metric[]): string {
  const lines: string[] = [];
  for (const m of metrics) {
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      const labels = s.labels && Object.keys(s.labels).length
        ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`
        : "";
      lines.push(`${m.name}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return lines.join("\n") + "\n";
}

async function metrics(): Promise<Metric[]> {
  const sql = serviceDb();
  const [stock] = await sql`select count(*)::int as devices,
      count(*) filter (where low_stock)::int as low_stock,
      count(*) filter (where one_time_remaining = 0)::int as one_time_empty,
      count(*) filter (where not last_resort_present)::int as no_last_resort,
      coalesce(sum(one_time_remaining), 0)::bigint as one_time_remaining
      from keyserver.monitor_prekey_stock`;
  const [lastResort] = await sql`select coalesce(sum(claims_24h), 0)::bigint as claims_24h,
      coalesce(sum(claims_retained), 0)::bigint as claims_retained
      from keyserver.monitor_last_resort_claims`;
  const denials = await sql`select bucket_family, buckets, denied_total,
      buckets_denied_last_hour from keyserver.monitor_rate_limit_denials order by 1`;
  const failures = await sql`select message_kind, failure_kind, sum(failures)::bigint as failures,
      sum(reports)::bigint as reports from keyserver.monitor_decrypt_failures
      where hour > now() - interval '24 hours' group by 1, 2 order by 1, 2`;
  const family = (r: Record<string, unknown>) => ({ family: String(r.bucket_family) });
  const kinds = (r: Record<string, unknown>) => ({
    message_kind: String(r.message_kind),
    failure_kind: String(r.failure_kind),
  });
  return [
    gauge("spots_prekey_devices", "Active agent devices.", stock.devices),
    gauge(
      "spots_prekey_devices_low_stock",
      "Devices below the low-stock threshold.",
      stock.low_stock,
    ),
    gauge(
      "spots_prekey_devices_one_time_empty",
      "Devices with no one-time bundle left (last resort only).",
      stock.one_time_empty,
    ),
    gauge(
      "spots_prekey_devices_without_last_resort",
      "Devices without a servable last-resort bundle.",
      stock.no_last_resort,
    ),
    gauge(
      "spots_prekey_one_time_remaining",
      "Unconsumed unexpired one-time bundles, all devices.",
      Number(stock.one_time_remaining),
    ),
    gauge(
      "spots_prekey_last_resort_claims_24h",
      "Last-resort bundles handed out in the last 24 hours.",
      Number(lastResort.claims_24h),
    ),
    {
      name: "spots_rate_limit_denied",
      help: "Rate-limit denials retained, per bucket family.",
      type: "counter",
      samples: denials.map((r) => ({ labels: family(r), value: Number(r.denied_total) })),
    },
    {
      name: "spots_rate_limit_buckets",
      help: "Rate-limit buckets, per family.",
      type: "gauge",
      samples: denials.map((r) => ({ labels: family(r), value: Number(r.buckets) })),
    },
    {
      name: "spots_rate_limit_buckets_denied_last_hour",
      help: "Buckets that denied in the last hour, per family.",
      type: "gauge",
      samples: denials.map((r) => ({
        labels: family(r),
        value: Number(r.buckets_denied_last_hour),
      })),
    },
    {
      name: "spots_decrypt_failures_24h",
      help: "Reported decryption failures in the last 24 hours.",
      type: "gauge",
      samples: failures.map((r) => ({ labels: kinds(r), value: Number(r.failures) })),
    },
  ];
}

function gauge(name: string, help: string, value: number): Metric {
  return { name, help, type: "gauge", samples: [{ value }] };
}

export const handler = makeHandler("ops", async (req, route) => {
  if (route !== "metrics") notFound();
  if (req.method !== "GET") methodNotAllowed();
  await authenticateService(req);
  return new Response(render(await metrics()), {
    status: 200,
    headers: { ...corsHeaders, "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
  });
});
