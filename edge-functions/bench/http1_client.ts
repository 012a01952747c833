// Minimal HTTP/1.1 keep-alive client for the gateway load generator. fetch() costs ~0.3 ms of CPU
// per request in the generating process, and the bench runs the generator on the same cores as
// the gateway and Postgres, so that CPU is taken from the system under test. This client writes
// pre-encoded request bytes on one connection and parses just enough of each response to know
// where it ends: one request at a time per connection, no pipelining, no TLS.

export type Http1Response = { status: number; body: Uint8Array };

/** A complete response at the start of a buffer; `end` is the number of bytes it occupies. */
export type ParsedResponse = Http1Response & { end: number; close: boolean };

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
const SEMICOLON = 59;
// Bounds what a broken or hostile peer can make us buffer before we give up on finding a CRLF.
const MAX_HEAD = 64 * 1024;
const MAX_CHUNK_LINE = 4 * 1024;

const encoder = new TextEncoder();

/**
 * One request as bytes, ready to be written as is: the bench sends the same few requests over
 * and over, so encoding them once keeps the per-request cost to a socket write.
 */
export function encodeRequest(
  method: string,
  url: URL,
  headers: Record<string, string>,
  body: string | Uint8Array = new Uint8Array(0),
): Uint8Array {
  const payload = typeof body === "string" ? encoder.encode(body) : body;
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  head += `content-length: ${payload.length}\r\n\r\n`;
  const headBytes = encoder.encode(head);
  const out = new Uint8Array(headBytes.length + payload.length);
  out.set(headBytes);
  out.set(payload, headBytes.length);
  return out;
}

function indexOfCrlf(buf: Uint8Array, from: number): number {
  for (let i = buf.indexOf(CR, from); i >= 0; i = buf.indexOf(CR, i + 1)) {
    if (i + 1 >= buf.length) return -1;
    if (buf[i + 1] === LF) return i;
  }
  return -1;
}

const latin1 = new TextDecoder("latin1");

function ascii(buf: Uint8Array, start: number, end: number): string {
  return latin1.decode(buf.subarray(start, end));
}

// ASCII lower case of one byte; only letters change, so "-" cannot match a control byte.
function lower(c: number): number {
  return c >= 65 && c <= 90 ? c | 0x20 : c;
}

// Case-insensitive comparison against a lower-case ASCII name, without building a string.
function nameIs(buf: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (lower(buf[start + i]) !== name.charCodeAt(i)) return false;
  }
  return true;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Parses the response at the start of `buf`: null while it is incomplete (call again with more
 * bytes), throws if it is malformed or framed in a way this client does not support. Pure over
 * the buffer, so a response can arrive split anywhere across reads.
 */
export function parseResponse(buf: Uint8Array): ParsedResponse | null {
  let start = 0;
  for (;;) {
    const headEnd = findHeadEnd(buf, start);
    if (headEnd < 0) {
      if (buf.length - start > MAX_HEAD) throw new Error(`response head over ${MAX_HEAD} bytes`);
      return null;
    }
    const head = parseHead(buf, start, headEnd);
    const bodyStart = headEnd + 4;
    // Informational responses (103 Early Hints, ...) precede the real one and have no body.
    if (head.status < 200) {
      start = bodyStart;
      continue;
    }
    if (head.status === 204 || head.status === 304) {
      return { status: head.status, body: new Uint8Array(0), end: bodyStart, close: head.close };
    }
    if (head.chunked) {
      const chunked = parseChunked(buf, bodyStart);
      return chunked && { status: head.status, ...chunked, close: head.close };
    }
    if (head.contentLength >= 0) {
      const end = bodyStart + head.contentLength;
      if (buf.length < end) return null;
      return { status: head.status, body: buf.slice(bodyStart, end), end, close: head.close };
    }
    throw new Error(
      `response ${head.status} has neither content-length nor chunked transfer-encoding ` +
        "(a body delimited by closing the connection is not supported)",
    );
  }
}

function findHeadEnd(buf: Uint8Array, from: number): number {
  for (let i = indexOfCrlf(buf, from); i >= 0; i = indexOfCrlf(buf, i + 2)) {
    if (buf[i + 2] === CR && buf[i + 3] === LF) return i;
  }
  return -1;
}

type Head = { status: number; contentLength: number; chunked: boolean; close: boolean };

// `end` is the index of the CRLF CRLF that ends the head.
function parseHead(buf: Uint8Array, start: number, end: number): Head {
  const lineEnd = indexOfCrlf(buf, start);
  // "HTTP/1.x NNN" then a space and a reason phrase, or nothing.
  const ok = lineEnd - start >= 12 && nameIs(buf, start, start + 7, "http/1.") &&
    isDigit(buf[start + 7]) && buf[start + 8] === SP && isDigit(buf[start + 9]) &&
    isDigit(buf[start + 10]) && isDigit(buf[start + 11]) &&
    (lineEnd - start === 12 || buf[start + 12] === SP);
  if (!ok) {
    throw new Error(`malformed status line: ${JSON.stringify(ascii(buf, start, lineEnd))}`);
  }
  const status = Number(ascii(buf, start + 9, start + 12));
  // HTTP/1.0 closes after each response unless it says otherwise.
  let close = buf[start + 7] === 48;
  let contentLength = -1;
  let chunked = false;
  let pos = lineEnd + 2;
  while (pos < end + 2) {
    const e = indexOfCrlf(buf, pos);
    const colon = buf.indexOf(COLON, pos);
    if (colon < 0 || colon > e) {
      throw new Error(`malformed header line: ${JSON.stringify(ascii(buf, pos, e))}`);
    }
    if (nameIs(buf, pos, colon, "content-length")) {
      const length = decimal(buf, colon + 1, e);
      if (contentLength >= 0 && length !== contentLength) {
        throw new Error("conflicting content-length headers");
      }
      contentLength = length;
    } else if (nameIs(buf, pos, colon, "transfer-encoding")) {
      const value = ascii(buf, colon + 1, e).trim().toLowerCase();
      if (value !== "chunked") throw new Error(`unsupported transfer-encoding: ${value}`);
      chunked = true;
    } else if (nameIs(buf, pos, colon, "connection")) {
      const tokens = ascii(buf, colon + 1, e).toLowerCase().split(",").map((t) => t.trim());
      if (tokens.includes("close")) close = true;
      else if (tokens.includes("keep-alive")) close = false;
    }
    pos = e + 2;
  }
  return { status, contentLength, chunked, close };
}

// The decimal value of a content-length field, surrounded by optional whitespace.
function decimal(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  const first = i;
  let value = 0;
  for (; i < end && isDigit(buf[i]); i++) value = value * 10 + buf[i] - 48;
  const digits = i - first;
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  if (digits === 0 || digits > 15 || i < end) {
    throw new Error(`bad content-length: ${JSON.stringify(ascii(buf, start, end))}`);
  }
  return value;
}

function chunkSize(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  let size = 0;
  for (; i < end; i++) {
    const c = lower(buf[i]);
    const digit = isDigit(c) ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (digit < 0) break;
    size = size * 16 + digit;
  }
  // Eight hex digits is 4 GiB; anything longer is not a chunk this bench will ever see.
  const digits = i - start;
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  if (digits === 0 || digits > 8 || (i < end && buf[i] !== SEMICOLON)) {
    throw new Error(`malformed chunk size line: ${JSON.stringify(ascii(buf, start, end))}`);
  }
  return size;
}

function parseChunked(buf: Uint8Array, start: number): { body: Uint8Array; end: number } | null {
  const parts: Uint8Array[] = [];
  let total = 0;
  let pos = start;
  for (;;) {
    const lineEnd = indexOfCrlf(buf, pos);
    if (lineEnd < 0) {
      if (buf.length - pos > MAX_CHUNK_LINE) throw new Error("chunk size line too long");
      return null;
    }
    const size = chunkSize(buf, pos, lineEnd);
    pos = lineEnd + 2;
    if (size === 0) break;
    if (buf.length < pos + size + 2) return null;
    if (buf[pos + size] !== CR || buf[pos + size + 1] !== LF) {
      throw new Error("chunk data not followed by CRLF");
    }
    parts.push(buf.subarray(pos, pos + size));
    total += size;
    pos += size + 2;
  }
  // Trailer fields, if any, then the empty line that ends the message.
  for (;;) {
    const lineEnd = indexOfCrlf(buf, pos);
    if (lineEnd < 0) {
      if (buf.length - pos > MAX_HEAD) throw new Error("chunked trailer too long");
      return null;
    }
    const empty = lineEnd === pos;
    pos = lineEnd + 2;
    if (empty) break;
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    body.set(part, offset);
    offset += part.length;
  }
  return { body, end: pos };
}

class ConnectionClosed extends Error {}

function isClosed(e: unknown): boolean {
  return e instanceof ConnectionClosed || e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionAborted;
}

/** One keep-alive connection; requests on it must be awaited one after the other. */
export class Http1Client {
  #conn: Deno.TcpConn | null = null;
  #buf = new Uint8Array(16 * 1024);
  #len = 0;
  #connections = 0;

  constructor(readonly hostname: string, readonly port: number) {}

  static forUrl(url: URL): Http1Client {
    if (url.protocol !== "http:") throw new Error(`only http: is supported, not ${url.protocol}`);
    return new Http1Client(url.hostname, Number(url.port || "80"));
  }

  /** Connections opened so far: more than one means the server closed some. */
  get connections(): number {
    return this.#connections;
  }

  /** Sends a request made by encodeRequest and reads its whole response. */
  async request(bytes: Uint8Array): Promise<Http1Response> {
    for (let attempt = 0;; attempt++) {
      const conn = this.#conn ?? await this.#connect();
      let received = false;
      try {
        for (let written = 0; written < bytes.length;) {
          written += await conn.write(bytes.subarray(written));
        }
        for (;;) {
          const n = await conn.read(this.#buf.subarray(this.#len));
          if (n === null) throw new ConnectionClosed("the server closed the connection");
          this.#len += n;
          received = true;
          const parsed = parseResponse(this.#buf.subarray(0, this.#len));
          if (parsed) return this.#finish(parsed);
          if (this.#len === this.#buf.length) {
            const bigger = new Uint8Array(this.#buf.length * 2);
            bigger.set(this.#buf);
            this.#buf = bigger;
          }
        }
      } catch (e) {
        this.close();
        // An idle keep-alive connection the server dropped is expected; the request never
        // reached it, or was not answered, so sending it again is safe enough for a bench.
        // Once part of a response has arrived, what the server did is unknown.
        if (received || attempt > 0 || !isClosed(e)) throw e;
      }
    }
  }

  close(): void {
    this.#conn?.close();
    this.#conn = null;
    this.#len = 0;
  }

  async #connect(): Promise<Deno.TcpConn> {
    const conn = await Deno.connect({ hostname: this.hostname, port: this.port });
    // Each request is one write; do not hold it back waiting for an ACK.
    conn.setNoDelay(true);
    this.#conn = conn;
    this.#connections++;
    return conn;
  }

  #finish(parsed: ParsedResponse): Http1Response {
    const extra = this.#len - parsed.end;
    if (extra > 0) {
      // Requests are never pipelined, so these bytes cannot belong to any request of ours.
      this.close();
      throw new Error(`${extra} unexpected bytes after a ${parsed.status} response`);
    }
    this.#len = 0;
    if (parsed.close) this.close();
    return { status: parsed.status, body: parsed.body };
  }
}
