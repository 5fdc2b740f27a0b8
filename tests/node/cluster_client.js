// A slot-routing Node client (ioredis `Cluster` or node-redis `createCluster`) for
// tests/cluster_protocol.rs: writes 200 keys through the startup node given, prints
// "phase1", waits for a line on stdin (the test kills the active meanwhile), writes
// 200 more, reads every acknowledged key back and prints them. A failed write is
// retried within a bounded time: SET of the same value has the same outcome whatever
// happened before.
const [kind, host, port] = process.argv.slice(2);

async function connect() {
  if (kind === "ioredis") {
    const Redis = require("ioredis");
    const client = new Redis.Cluster([{ host, port: Number(port) }], {
      redisOptions: { connectTimeout: 2000 },
      clusterRetryStrategy: () => 100,
    });
    client.on("error", () => {});
    return { set: (k, v) => client.set(k, v), get: (k) => client.get(k), close: () => client.disconnect() };
  }
  const { createCluster } = require("redis");
  const client = createCluster({ rootNodes: [{ url: `redis://${host}:${port}` }] });
  client.on("error", () => {});
  await client.connect();
  return { set: (k, v) => client.set(k, v), get: (k) => client.get(k), close: () => client.destroy() };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Bounded: a client stuck waiting for a server it will never reach fails the test
// instead of hanging it.
setTimeout(() => {
  console.error("cluster_client.js: no result within 120 s");
  process.exit(2);
}, 120000).unref();

async function main() {
  const client = await connect();
  const acked = [];
  async function write(i, deadlineMs) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      try {
        await client.set(`key:${i}`, `value:${i}`);
        acked.push(`key:${i}`);
        return;
      } catch (e) {
        if (Date.now() > end) throw e;
        await sleep(50);
      }
    }
  }
  for (let i = 0; i < 200; i++) await write(i, 10000);
  console.log("phase1");
  await new Promise((resolve) => process.stdin.once("data", resolve));
  for (let i = 200; i < 400; i++) await write(i, 30000);
  for (const key of acked) {
    const value = await client.get(key);
    if (value !== `value:${key.split(":")[1]}`) throw new Error(`${key} read back ${value}`);
  }
  console.log("acked " + acked.join(" "));
  await client.close();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
