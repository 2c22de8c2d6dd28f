// The peer users would pick instead of the vendor: Node's own `node:http`
// (no framework), one module-level cached token refreshed at half-life, and
// the vendor's response headers (security headers, request id, CORS for an
// allowed origin). No caller auth, rate limit, audit or metrics: it shows
// what a minimal hand-rolled token endpoint costs, for bench/run.sh.
//
//   node bench/node-peer.mjs --port 7090 --token-url http://127.0.0.1:7070/oauth/token \
//     --client bench-sdk:secret [--origin https://app.example.com]
import http from "node:http";
import { randomBytes } from "node:crypto";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const [clientId, clientSecret] = (args.client ?? ":").split(":");
const origins = new Set(args.origin ? [args.origin] : []);

// Module-level cache: the token, when it expires, and the refresh in flight.
let token = null;
let expiresAt = 0;
let refreshing = null;

async function refresh() {
  const started = Date.now();
  const res = await fetch(args["token-url"], {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      grant_type: "client_credentials",
      client_id: clientId,
      client_secret: clientSecret,
    }),
  });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  const body = await res.json();
  token = body.access_token;
  expiresAt = started + body.expires_in * 1000;
  const lifetime = body.expires_in * 1000;
  setTimeout(() => void current(true), Math.max(lifetime / 2, 1000)).unref();
}

function current(force = false) {
  if (!force && token && Date.now() < expiresAt) return Promise.resolve(token);
  refreshing ??= refresh().finally(() => {
    refreshing = null;
  });
  return refreshing.then(() => token);
}

function answer(req, res, value) {
  const headers = {
    "content-type": "application/json",
    "cache-control": "no-store",
    pragma: "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-request-id": randomBytes(16).toString("hex"),
    vary: "Origin",
  };
  const origin = req.headers.origin;
  if (origin !== undefined) {
    if (!origins.has(origin)) {
      res.writeHead(403, headers).end();
      return;
    }
    headers["access-control-allow-origin"] = origin;
    headers["access-control-allow-credentials"] = "true";
  }
  const body = JSON.stringify({
    access_token: value,
    expires_in: Math.max(0, Math.floor((expiresAt - Date.now()) / 1000)),
    token_type: "Bearer",
  });
  res.writeHead(200, headers).end(body);
}

const server = http.createServer((req, res) => {
  if (token && Date.now() < expiresAt) {
    answer(req, res, token);
    return;
  }
  current().then(
    (value) => answer(req, res, value),
    () => res.writeHead(503, { "retry-after": "1" }).end(),
  );
});
server.keepAliveTimeout = 60_000;
await current();
server.listen(Number(args.port ?? 7090), "127.0.0.1", () => {
  console.log(`node peer ready: http://127.0.0.1:${server.address().port}/`);
});
