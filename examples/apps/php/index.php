<?php
// Tandem example app (PHP): phpredis's session handler with session locking on, a
// session counter, and a "shared document" edited under a fenced lock. Run three of
// these behind a load balancer without stickiness; every instance talks to Tandem
// through a load balancer that sends clients to mirrors (see examples/README.md).
//
//   TANDEM_HOST=127.0.0.1 TANDEM_PORT=7000 APP_NAME=php1 php -S 127.0.0.1:8001 index.php
//
// GET /?rid=ID  counts the visit in the session, then appends ID to the shared
//               document's log under the lock; answers {app, n, token, rid} as JSON.
// GET /doc      the document: its log and last edit.
// GET /members  the instances in the group "apps" (the Node and Python apps join it;
//               a PHP request lives too briefly to be a member, see examples/README.md).
// GET /health   200 when Tandem answers PING (for the load balancer's checks).

$host = getenv('TANDEM_HOST') ?: '127.0.0.1';
$port = (int) (getenv('TANDEM_PORT') ?: 6379);
$app = getenv('APP_NAME') ?: 'php';

// The shared document: its lock and its keys share a hash tag, so in an array of
// several stripes they live in one stripe (TANDEM.FENCED needs that).
const LOCK = '{doc}lock';
const LOG = '{doc}log';
const BODY = '{doc}body';
const LOCK_TTL_MS = 10000; // a holder that dies loses the lock after this
const LOCK_WAIT_MS = 10000; // how long a request queues for the lock
const GROUP = 'apps';
const CHANGES = 'doc:changes'; // every edit is broadcast here

// Sessions in Tandem, locked while a request runs: two requests of one browser on
// two instances take turns instead of overwriting each other's session.
ini_set('session.save_handler', 'redis');
ini_set('session.save_path', "tcp://$host:$port");
ini_set('redis.session.locking_enabled', '1');
ini_set('redis.session.lock_wait_time', '20000'); // µs between tries
ini_set('redis.session.lock_retries', '500'); // 10 s in all

function tandem(string $host, int $port): Redis
{
    $r = new Redis();
    $r->connect($host, $port, 5.0, null, 0, 30.0);
    return $r;
}

/** A TANDEM.* command; its reply, or an exception carrying the error Tandem sent. */
function tandem_command(Redis $r, string ...$args)
{
    $r->clearLastError();
    $reply = $r->rawCommand(...$args);
    if ($reply === false && $r->getLastError() !== null) {
        throw new RuntimeException("$args[0]: " . $r->getLastError());
    }
    return $reply;
}

/**
 * Takes the document's lock, appends $rid to its log and rewrites its body, each
 * write fenced by the token (a holder whose lease ran out cannot write), and lets
 * the lock go. Returns the fencing token. The connection is this request's own: a
 * lock belongs to the session of the connection that took it.
 */
function edit_document(Redis $r, string $rid, string $text): int
{
    $token = tandem_command($r, 'TANDEM.LOCK', LOCK, 'TTL', (string) LOCK_TTL_MS, 'WAIT', (string) LOCK_WAIT_MS);
    if (!is_int($token)) {
        throw new RuntimeException('the lock ' . LOCK . ' was not free within ' . LOCK_WAIT_MS . ' ms');
    }
    try {
        tandem_command($r, 'TANDEM.FENCED', LOCK, (string) $token, 'RPUSH', LOG, $rid);
        tandem_command($r, 'TANDEM.FENCED', LOCK, (string) $token, 'SET', BODY, $text);
    } finally {
        tandem_command($r, 'TANDEM.UNLOCK', LOCK, (string) $token);
    }
    return $token;
}

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
try {
    if ($path === '/health') {
        tandem($host, $port)->ping();
        header('Content-Type: text/plain');
        echo "PONG $app\n";
    } elseif ($path === '/doc') {
        $r = tandem($host, $port);
        $log = $r->lRange(LOG, 0, -1);
        header('Content-Type: application/json');
        echo json_encode(['app' => $app, 'body' => $r->get(BODY), 'edits' => count($log), 'log' => $log]);
    } elseif ($path === '/members') {
        $flat = tandem_command(tandem($host, $port), 'TANDEM.GROUP', 'MEMBERS', GROUP);
        $members = [];
        for ($i = 0; $i + 1 < count($flat); $i += 2) {
            $members[$flat[$i]] = $flat[$i + 1];
        }
        header('Content-Type: application/json');
        echo json_encode(['app' => $app, 'members' => (object) $members]);
    } elseif ($path === '/') {
        session_start();
        $n = ($_SESSION['n'] ?? 0) + 1;
        $_SESSION['n'] = $n;
        session_write_close(); // written (and its lock released) before the edit
        $rid = (string) ($_GET['rid'] ?? bin2hex(random_bytes(8)));
        $r = tandem($host, $port);
        $token = edit_document($r, $rid, "edit $rid by $app (visit $n of its session)");
        $r->publish(CHANGES, "$rid edited by $app with token $token");
        header('Content-Type: application/json');
        echo json_encode(['app' => $app, 'n' => $n, 'token' => $token, 'rid' => $rid]);
    } else {
        http_response_code(404);
        echo "not found\n";
    }
} catch (Throwable $e) {
    error_log("$app: " . $e->getMessage());
    http_response_code($path === '/health' ? 503 : 500);
    header('Content-Type: text/plain');
    echo 'tandem: ' . $e->getMessage() . "\n";
}
