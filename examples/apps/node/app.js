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
// GET /members  the instances in the group "apps", and the broadcasts this one heard.
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
// Broadcasts: every edit is announced here; the group's joins and leaves come on
// Tandem's own channel for the group.
const GROUP = 'apps';
const CHANGES = 'doc:changes';
const GROUP_EVENTS = `__tandem__:group:${GROUP}`;
const HEARD_MAX = 20;

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

// Membership: a connection of its own with an explicit session, so that after a
// reconnect (RESUME within the client-reconnect-window) the instance is still the
// same member; it leaves the group a window after it dies.
const member = createClient({ url: TANDEM_URL });
member.on('error', (e) => console.error(`${APP_NAME}: tandem (member): ${e.message}`));
let sessionId = null;
member.on('ready', () => {
  const resume = sessionId ? member.sendCommand(['TANDEM.SESSION', 'RESUME', sessionId]) : Promise.reject(new Error('no session'));
  resume
    .catch(async () => {
      sessionId = String(await member.sendCommand(['TANDEM.SESSION', 'OPEN']));
    })
    .then(() => member.sendCommand(['TANDEM.GROUP', 'JOIN', GROUP, APP_NAME, `http://127.0.0.1:${PORT}/`]))
    .catch((e) => console.error(`${APP_NAME}: joining ${GROUP}: ${e.message}`));
});

// What this instance heard: edits broadcast by every instance, joins and leaves.
const heard = [];
const listener = member.duplicate();
listener.on('error', (e) => console.error(`${APP_NAME}: tandem (listener): ${e.message}`));
function hear(message, channel) {
  heard.push(`${channel}: ${message}`);
  if (heard.length > HEARD_MAX) heard.shift();
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

app.get('/members', async (_req, res, next) => {
  try {
    const flat = await tandem.sendCommand(['TANDEM.GROUP', 'MEMBERS', GROUP]);
    const members = {};
    for (let i = 0; i + 1 < flat.length; i += 2) members[flat[i]] = flat[i + 1];
    res.json({ app: APP_NAME, members, heard });
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
    await tandem.publish(CHANGES, `${rid} edited by ${APP_NAME} with token ${token}`);
    // express-session writes the session before the response ends.
    res.json({ app: APP_NAME, n, token, rid });
  } catch (e) {
    next(e);
  }
});

async function main() {
  await tandem.connect();
  await locks.connect();
  await member.connect();
  await listener.connect();
  await listener.subscribe([CHANGES, GROUP_EVENTS], hear);
  const server = app.listen(PORT, '127.0.0.1', () => console.log(`${APP_NAME} listening on http://127.0.0.1:${PORT}/`));
  // Leaving on purpose: CLOSE ends the session now, so the instance leaves the group
  // at once instead of a window later.
  const stop = () => {
    // Not longer than this, Tandem or not.
    setTimeout(() => process.exit(0), 3000).unref();
    server.closeIdleConnections();
    server.close(() =>
      member
        .sendCommand(['TANDEM.SESSION', 'CLOSE'])
        .catch(() => {})
        .then(() => Promise.allSettled([tandem.quit(), locks.close(), member.quit(), listener.quit()]))
        .then(() => process.exit(0))
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(`${APP_NAME}: ${e.stack || e}`);
  process.exit(1);
});
