// Wraps a function's router: CORS preflight, path normalisation, error mapping and a log line
// per request that carries only the route, status and duration.
//
// The request lines are written together, at most ACCESS_LOG_FLUSH_MS after the first of them:
// a write per request cost about a tenth of a prekey fetch's gateway CPU (BENCHMARKS.md,
// Gateway). Errors are written at once.

import { corsHeaders, errorResponse, HttpError } from "./http.ts";

/** A function's routes: `route` is the path after the function name ("" for the root). */
export type RouteHandler = (req: Request, route: string) => Promise<Response>;

/**
 * The sub-route of a request for `name`. Hosted Supabase hands functions paths starting with
 * `/<name>`; the local gateway keeps the public `/functions/v1/<name>` prefix.
 */
export function subRoute(name: string, url: URL): string | null {
  let path = url.pathname;
  if (path.startsWith("/functions/v1/")) path = path.slice("/functions/v1".length);
  if (path !== `/${name}` && !path.startsWith(`/${name}/`)) return null;
  return path.slice(name.length + 2).replace(/\/+$/, "");
}

const ACCESS_LOG_FLUSH_MS = 100;
let accessLines: string[] = [];

function logRequest(line: string): void {
  if (accessLines.push(line) > 1) return;
  // A pending flush keeps the isolate up until it has written (Deno.unrefTimer would not, and
  // is not a web API that every edge runtime has).
  setTimeout(() => {
    const lines = accessLines;
    accessLines = [];
    console.log(lines.join("\n"));
  }, ACCESS_LOG_FLUSH_MS);
}

export function makeHandler(
  name: string,
  routes: RouteHandler,
): (req: Request) => Promise<Response> {
  return async (req: Request) => {
    const started = performance.now();
    const url = new URL(req.url);
    let response: Response;
    try {
      if (req.method === "OPTIONS") {
        response = new Response(null, { status: 204, headers: corsHeaders });
      } else {
        const route = subRoute(name, url);
        if (route === null) throw new HttpError(404, "not_found", "no such function");
        response = await routes(req, route);
      }
    } catch (error) {
      if (error instanceof HttpError) {
        response = errorResponse(error);
      } else {
        // Unexpected failures are logged by class only: messages may quote inputs.
        console.error(`${name}: internal error (${(error as Error)?.name ?? "unknown"})`);
        response = errorResponse(new HttpError(500, "internal", "internal error"));
      }
    }
    const ms = (performance.now() - started).toFixed(1);
    logRequest(`${name} ${req.method} ${url.pathname} ${response.status} ${ms}ms`);
    return response;
  };
}

export function methodNotAllowed(): never {
  throw new HttpError(405, "method_not_allowed", "method not allowed");
}

export function notFound(): never {
  throw new HttpError(404, "not_found", "no such route");
}
