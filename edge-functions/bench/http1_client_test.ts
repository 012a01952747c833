// The load generator's HTTP/1.1 client: the response parser fed byte by byte, and the client
// against real local servers (Deno.serve, and raw TCP servers for what Deno.serve will not do:
// closing between requests, cutting a response short, dribbling it out a byte at a time).
// Run: deno test --allow-net=127.0.0.1 bench/http1_client_test.ts
import assert from "node:assert/strict";
import { encodeRequest, Http1Client, parseResponse } from "./http1_client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);
const text = (body: Uint8Array) => decoder.decode(body);

// Every proper prefix is incomplete and the whole parses: the same as the response arriving split
// at any position, including one byte per read.
function parsePrefixes(raw: Uint8Array) {
  for (let i = 0; i < raw.length; i++) {
    assert.equal(parseResponse(raw.subarray(0, i)), null, `prefix of ${i} bytes`);
  }
  const parsed = parseResponse(raw);
  assert.ok(parsed);
  return parsed;
}

Deno.test("parser: content-length body, split anywhere", () => {
  const raw = bytes(
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCONTENT-LENGTH:  5 \r\n\r\nhello",
  );
  const parsed = parsePrefixes(raw);
  assert.equal(parsed.status, 200);
  assert.equal(text(parsed.body), "hello");
  assert.equal(parsed.end, raw.length);
  assert.equal(parsed.close, false);
});

Deno.test("parser: chunked body with extensions and trailers, split anywhere", () => {
  const raw = bytes(
    "HTTP/1.1 201 Created\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n" +
      "5\r\nhello\r\n1;name=value\r\n,\r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
  );
  const parsed = parsePrefixes(raw);
  assert.equal(parsed.status, 201);
  assert.equal(text(parsed.body), "hello,0123456789");
  assert.equal(parsed.end, raw.length);
  assert.equal(parsed.close, true);
});

Deno.test("parser: chunk data that looks like framing", () => {
  const raw = bytes(
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n\r\n\r\n\r\n2\r\n0\r\r\n0\r\n\r\n",
  );
  const parsed = parsePrefixes(raw);
  assert.equal(text(parsed.body), "\r\n\r\n0\r");
  assert.equal(parsed.end, raw.length);
});

Deno.test("parser: consecutive responses in one buffer", () => {
  const first = "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno";
  const second = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nyes\r\n0\r\n\r\n";
  const raw = bytes(first + second);
  const a = parseResponse(raw);
  assert.ok(a);
  assert.deepEqual([a.status, text(a.body), a.end], [404, "no", first.length]);
  const b = parseResponse(raw.subarray(a.end));
  assert.ok(b);
  assert.deepEqual([b.status, text(b.body), b.end], [200, "yes", second.length]);
});

Deno.test("parser: informational responses are skipped, 204 has no body", () => {
  const raw = bytes(
    "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
  );
  const parsed = parsePrefixes(raw);
  assert.equal(parsed.status, 204);
  assert.equal(parsed.body.length, 0);
  assert.equal(parsed.end, raw.length);
});

Deno.test("parser: HTTP/1.0 closes unless it asks for keep-alive", () => {
  const plain = parseResponse(bytes("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
  assert.equal(plain?.close, true);
  const kept = parseResponse(
    bytes("HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n"),
  );
  assert.equal(kept?.close, false);
});

Deno.test("parser: unsupported or malformed responses throw", () => {
  const cases: [string, RegExp][] = [
    ["HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil close", /neither content-length nor/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", /unsupported transfer-enc/],
    ["HTTP/1.1 200 OK\r\ncontent-length: 12a\r\n\r\n", /bad content-length/],
    ["HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab", /conflicting/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", /malformed chunk size/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n", /not followed by CRLF/],
    ["HTTP/2 200\r\ncontent-length: 0\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", /malformed header line/],
    ["HTTP/1.1 200 OK\r\ncontent\rlength: 0\r\n\r\n", /neither content-length nor/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\x10\r\n\r\n", /malformed chunk/],
  ];
  for (const [raw, message] of cases) {
    assert.throws(() => parseResponse(bytes(raw)), message, JSON.stringify(raw));
  }
  assert.throws(() => parseResponse(new Uint8Array(70 * 1024).fill(65)), /head over/);
});

Deno.test("encodeRequest: head and body in one buffer", () => {
  const raw = encodeRequest(
    "POST",
    new URL("http://127.0.0.1:8080/functions/v1/dm/send?x=1"),
    { authorization: "Bearer t", "content-type": "application/json" },
    '{"é":1}',
  );
  assert.equal(
    text(raw),
    "POST /functions/v1/dm/send?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n" +
      "authorization: Bearer t\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n" +
      '{"é":1}',
  );
});

function serve(handler: Deno.ServeHandler<Deno.NetAddr>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return { server, url: (path: string) => new URL(path, `http://127.0.0.1:${server.addr.port}`) };
}

function denoServer() {
  return serve(async (req) => {
    // Deno answers "connection: close" when a handler leaves the request body unread.
    const body = await req.text();
    const path = new URL(req.url).pathname;
    if (path === "/length") return new Response("hello");
    if (path === "/echo") {
      return Response.json({
        host: req.headers.get("host"),
        authorization: req.headers.get("authorization"),
        body,
      });
    }
    if (path === "/chunked") {
      let i = 0;
      // Pauses between chunks so they leave the server as separate writes.
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (i === 5) return controller.close();
          await new Promise((resolve) => setTimeout(resolve, 5));
          controller.enqueue(bytes(chunkText(i++)));
        },
      });
      return new Response(stream, { headers: { "content-type": "text/plain" } });
    }
    return new Response("not here", { status: 404 });
  });
}

const chunkText = (i: number) => `part ${i};`.repeat((i + 1) * 100);
const expectedChunked = Array.from({ length: 5 }, (_, i) => chunkText(i)).join("");

Deno.test("client: Deno.serve responses, sequential requests on one connection", async () => {
  const { server, url } = denoServer();
  const client = Http1Client.forUrl(url("/"));
  try {
    const headers = { authorization: "Bearer jwt", "content-type": "application/json" };
    const echo = encodeRequest("POST", url("/echo"), headers, '{"a":1}');
    for (let i = 0; i < 3; i++) {
      const length = await client.request(encodeRequest("POST", url("/length"), headers, "x"));
      assert.deepEqual([length.status, text(length.body)], [200, "hello"]);

      const chunked = await client.request(encodeRequest("GET", url("/chunked"), {}));
      assert.equal(chunked.status, 200);
      assert.equal(text(chunked.body), expectedChunked);

      const missing = await client.request(encodeRequest("POST", url("/nowhere"), headers, "{}"));
      assert.deepEqual([missing.status, text(missing.body)], [404, "not here"]);

      const echoed = await client.request(echo);
      assert.equal(echoed.status, 200);
      const seen = JSON.parse(text(echoed.body));
      assert.equal(seen.host, url("/").host);
      assert.equal(seen.authorization, "Bearer jwt");
      assert.equal(seen.body, '{"a":1}');
    }
    assert.equal(client.connections, 1);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("Deno.serve frames a stream as chunked and a string with content-length", async () => {
  // Guards the test above: the chunked path is only exercised if the server really chunks.
  const { server, url } = denoServer();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    const heads: string[] = [];
    for (const path of ["/chunked", "/length"]) {
      await conn.write(encodeRequest("GET", url(path), {}));
      let raw = new Uint8Array(0);
      let parsed = null;
      while (!parsed) {
        const chunk = new Uint8Array(4096);
        const n = await conn.read(chunk);
        assert.ok(n !== null);
        const grown = new Uint8Array(raw.length + n);
        grown.set(raw);
        grown.set(chunk.subarray(0, n), raw.length);
        raw = grown;
        parsed = parseResponse(raw);
      }
      assert.equal(parsed.end, raw.length);
      heads.push(text(raw).split("\r\n\r\n")[0].toLowerCase());
      if (path === "/chunked") {
        // A real server's chunked bytes, fed one byte at a time.
        assert.equal(text(parsePrefixes(raw).body), expectedChunked);
      }
    }
    assert.match(heads[0], /\r\ntransfer-encoding: chunked(\r\n|$)/);
    assert.doesNotMatch(heads[0], /content-length/);
    assert.match(heads[1], /\r\ncontent-length: 5(\r\n|$)/);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

// A raw TCP server: handle(conn, n) runs for the n-th accepted connection, which is closed after.
function rawServer(handle: (conn: Deno.Conn, n: number) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const done = (async () => {
    const tasks: Promise<void>[] = [];
    for await (const conn of listener) {
      tasks.push(handle(conn, accepted++).finally(() => conn.close()));
    }
    await Promise.all(tasks);
  })();
  return {
    url: new URL(`http://127.0.0.1:${listener.addr.port}/`),
    accepted: () => accepted,
    close: async () => {
      listener.close();
      await done;
    },
  };
}

// Reads one request with no body; false if the client closed first.
async function readRequest(conn: Deno.Conn): Promise<boolean> {
  let seen = "";
  const buf = new Uint8Array(4096);
  while (!seen.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) return false;
    seen += decoder.decode(buf.subarray(0, n));
  }
  return true;
}

Deno.test("client: reconnects once when the server closed an idle connection", async () => {
  // Answers one request per connection and closes it without saying so.
  const server = rawServer(async (conn, n) => {
    if (await readRequest(conn)) {
      await conn.write(bytes(`HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n${n}`));
    }
  });
  const client = Http1Client.forUrl(server.url);
  try {
    const request = encodeRequest("GET", server.url, {});
    for (let i = 0; i < 3; i++) {
      const response = await client.request(request);
      assert.deepEqual([response.status, text(response.body)], [200, String(i)]);
    }
    assert.equal(server.accepted(), 3);
    assert.equal(client.connections, 3);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("client: reconnects after a response with connection: close", async () => {
  const server = rawServer(async (conn) => {
    while (await readRequest(conn)) {
      await conn.write(
        bytes("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"),
      );
    }
  });
  const client = Http1Client.forUrl(server.url);
  try {
    const request = encodeRequest("GET", server.url, {});
    for (let i = 0; i < 3; i++) assert.equal((await client.request(request)).status, 200);
    assert.equal(server.accepted(), 3);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("client: a response cut short is an error, not a retry", async () => {
  const server = rawServer(async (conn) => {
    if (await readRequest(conn)) {
      await conn.write(bytes("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"));
    }
  });
  const client = Http1Client.forUrl(server.url);
  try {
    await assert.rejects(
      client.request(encodeRequest("GET", server.url, {})),
      /closed the connection/,
    );
    assert.equal(server.accepted(), 1);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("client: a body delimited by closing the connection is refused", async () => {
  const server = rawServer(async (conn) => {
    if (await readRequest(conn)) await conn.write(bytes("HTTP/1.1 200 OK\r\n\r\nuntil close"));
  });
  const client = Http1Client.forUrl(server.url);
  try {
    await assert.rejects(
      client.request(encodeRequest("GET", server.url, {})),
      /neither content-length nor chunked/,
    );
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("client: responses written a byte at a time", async () => {
  const responses = [
    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n",
  ];
  const server = rawServer(async (conn) => {
    for (let i = 0; await readRequest(conn); i++) {
      const raw = bytes(responses[i % 2]);
      for (let j = 0; j < raw.length; j++) {
        await conn.write(raw.subarray(j, j + 1));
        // Lets the client's read return in between, so it really sees partial responses.
        if (j % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  });
  const client = Http1Client.forUrl(server.url);
  try {
    const request = encodeRequest("GET", server.url, {});
    for (let i = 0; i < 4; i++) {
      const response = await client.request(request);
      assert.equal(text(response.body), i % 2 ? "second" : "first");
    }
    assert.equal(server.accepted(), 1);
  } finally {
    client.close();
    await server.close();
  }
});
