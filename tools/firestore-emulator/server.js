#!/usr/bin/env node
// Pinned, in-memory Firestore emulator for tests and `make run`.
//
// The package's own FirestoreServer#start() binds 0.0.0.0; we bind the gRPC
// server ourselves so it only listens on loopback by default.
//
// Env:
//   HOST  interface to bind (default 127.0.0.1)
//   PORT  port to bind (default 8787; 0 = pick a free port)
//   EMULATOR_EXIT_ON_STDIN_EOF=1  also exit when stdin reaches EOF (set by
//         backend/devtools/local_stack.py so the emulator dies with its parent)
//   EMULATOR_STATS_PORT  if set, count every RPC received, by method, and serve the
//         counts as JSON on http://HOST:EMULATOR_STATS_PORT/ (the benchmark's round-trip count)
//
// When ready, prints exactly one line to stdout:
//   firestore emulator listening on HOST:PORT
// (PORT is the actual bound port). Exits 0 on SIGTERM/SIGINT.
"use strict";

const { FirestoreServer } = require("@firestore-emulator/server");
const grpc = require("@grpc/grpc-js");

const host = process.env.HOST || "127.0.0.1";
const rawPort = process.env.PORT === undefined || process.env.PORT === "" ? "8787" : process.env.PORT;
const port = Number.parseInt(rawPort, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535 || String(port) !== rawPort.trim()) {
  process.stderr.write(`firestore emulator: invalid PORT ${JSON.stringify(rawPort)}\n`);
  process.exit(2);
}

// Counting happens at the server, so every RPC a client makes is seen, retries included.
const rpcCounts = {};
if (process.env.EMULATOR_STATS_PORT) {
  const addService = grpc.Server.prototype.addService;
  grpc.Server.prototype.addService = function countingAddService(definition, implementation) {
    const counted = {};
    for (const [name, method] of Object.entries(definition)) {
      const handler = implementation[name] || implementation[method.originalName];
      if (typeof handler !== "function") continue;
      const wrapped = function countedCall(...args) {
        rpcCounts[name] = (rpcCounts[name] || 0) + 1;
        return handler.apply(implementation, args);
      };
      counted[name] = wrapped;
      if (method.originalName) counted[method.originalName] = wrapped;
    }
    return addService.call(this, definition, counted);
  };
  const http = require("http");
  http
    .createServer((req, res) => {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(rpcCounts));
    })
    .listen(Number.parseInt(process.env.EMULATOR_STATS_PORT, 10), host);
}

const srv = new FirestoreServer();
let stopping = false;

function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`firestore emulator: ${signal} received, shutting down\n`);
  try {
    srv.server.forceShutdown();
  } finally {
    process.exit(0);
  }
}

process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
if (process.env.EMULATOR_EXIT_ON_STDIN_EOF === "1") {
  process.stdin.on("end", () => shutdown("stdin EOF"));
  process.stdin.on("error", () => shutdown("stdin error"));
  process.stdin.resume();
}

// IPv6 literals need brackets in the gRPC target.
const target = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;

srv.server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
  if (err) {
    process.stderr.write(`firestore emulator: failed to bind ${target}: ${err.message}\n`);
    process.exit(1);
  }
  // grpc-js >= 1.10 starts serving automatically after bindAsync; older
  // versions needed an explicit start(), which now only logs a deprecation.
  const hostForDisplay = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  process.stdout.write(`firestore emulator listening on ${hostForDisplay}:${boundPort}\n`);
});
