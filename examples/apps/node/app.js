// Tandem example app (Node): express-session on connect-redis, a session counter,
// and a "shared document" edited under a fenced lock. Run three of these behind a
// load balancer without stickiness; every instance talks to Tandem through a load
// balancer that sends clients to mirrors (see examples/README.md).
//
//   TANDEM_URL=redis://127.0.0.1:7000 PORT=8101 APP_NAME=node1 node app.js
//
// GET /?rid=ID  counts the visit in the session, then appends ID to the shared
//               document's log under the lock; answers {app, n, token, rid} as JSON.
// GET /doc      the document: its log and last edit.
// GET /health   200 when Tandem answers PING (for the load balancer's checks).
'use strict';

const crypto = require('node:crypto');
const express = require('express');
const session = require('express-session');
const { RedisStore } = require('connect-redis');
const { createClient, createClientPool } = require('redis');

const TANDEM_URL = process.env.TANDEM_URL || 'redis://127.0.0.1:6379';
const PORT = Number(process.env.PORT || 8080);
const APP_NAME = process.env.APP_NAME || `node-${PORT}`;

// The shared document: its lock and its keys share a hash tag, so in an array of
// several stripes they live in one stripe (TANDEM.FENCED needs that).
const LOCK = '{doc}lock';
const LOG = '{doc}log';
const BODY = '{doc}body';
const LOCK_TTL_MS = 10000; // a holder that dies loses the lock after this
const LOCK_WAIT_MS = 10000; // how long a request queues for the lock

// Sessions: one shared connection (commands are pipelined on it).
const tandem = createClient({ url: TANDEM_URL });
tandem.on('error', (e) => console.error(`${APP_NAME}: tandem: ${e.message}`));

// Locks: a pool, and each edit takes one connection for itself (pool.execute). A lock
// belongs to the session of the connection that took it, and TANDEM.LOCK ... WAIT
// blocks its connection: two requests must never share one.
const locks = createClientPool({ url: TANDEM_URL }, { minimum: 1, maximum: 8, acquireTimeout: LOCK_WAIT_MS });
locks.on('error', (e) => console.error(`${APP_NAME}: tandem (locks): ${e.message}`));

/// Takes the document's lock, appends `rid` to its log and rewrites its body, each
/// write fenced by the token (a holder whose lease ran out cannot write), and lets
/// the lock go. Returns the fencing token.
async function editDocument(rid, text) {
  return locks.execute(async (c) => {
    const token = await c.sendCommand(['TANDEM.LOCK', LOCK, 'TTL', String(LOCK_TTL_MS), 'WAIT', String(LOCK_WAIT_MS)]);
    if (token === null) throw new Error(`the lock ${LOCK} was not free within ${LOCK_WAIT_MS} ms`);
    try {
      await c.sendCommand(['TANDEM.FENCED', LOCK, String(token), 'RPUSH', LOG, rid]);
      await c.sendCommand(['TANDEM.FENCED', LOCK, String(token), 'SET', BODY, text]);
    } finally {
      await c.sendCommand(['TANDEM.UNLOCK', LOCK, String(token)]);
    }
    return token;
  });
}

const app = express();
app.use(
  session({
    store: new RedisStore({ client: tandem, prefix: 'sess:' }),
    secret: process.env.SESSION_SECRET || 'tandem-example',
    name: 'sid',
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax' },
  })
);

app.get('/health', async (_req, res) => {
  try {
    res.type('text').send(`${await tandem.ping()} ${APP_NAME}\n`);
  } catch (e) {
    res.status(503).type('text').send(`tandem: ${e.message}\n`);
  }
});

app.get('/doc', async (_req, res, next) => {
  try {
    const [log, body] = await Promise.all([tandem.lRange(LOG, 0, -1), tandem.get(BODY)]);
    res.json({ app: APP_NAME, body, edits: log.length, log });
  } catch (e) {
    next(e);
  }
});

app.get('/', async (req, res, next) => {
  try {
    const n = (req.session.n || 0) + 1;
    req.session.n = n;
    const rid = String(req.query.rid || crypto.randomUUID());
    const token = await editDocument(rid, `edit ${rid} by ${APP_NAME} (visit ${n} of its session)`);
    // express-session writes the session before the response ends.
    res.json({ app: APP_NAME, n, token, rid });
  } catch (e) {
    next(e);
  }
});

async function main() {
  await tandem.connect();
  await locks.connect();
  const server = app.listen(PORT, '127.0.0.1', () => console.log(`${APP_NAME} listening on http://127.0.0.1:${PORT}/`));
  const stop = () => server.close(() => Promise.allSettled([tandem.quit(), locks.close()]).then(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(`${APP_NAME}: ${e.stack || e}`);
  process.exit(1);
});
