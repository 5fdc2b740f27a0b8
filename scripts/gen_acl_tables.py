# Generates src/acl/redis_table.rs (python3 scripts/gen_acl_tables.py PORT > src/acl/redis_table.rs) from a running redis-server 7.0.15: each command's
# ACL categories and the read/write access of its key specs.
import redis, sys
r = redis.Redis(port=int(sys.argv[1]), decode_responses=True)
cats = r.execute_command("ACL", "CAT")
members = {}
for c in cats:
    for name in r.execute_command("ACL", "CAT", c):
        members.setdefault(name, []).append(c)
# The raw reply (redis-py's COMMAND callback would reshape it).
conn = r.connection_pool.get_connection("COMMAND")
conn.send_command("COMMAND")
info = conn.read_response()
def keyspecs(entry):
    # entry: [name, arity, flags, first, last, step, acl_cats, tips, key_specs, subcommands]
    out = []
    for spec in entry[8]:
        d = dict(zip(spec[0::2], spec[1::2]))
        flags = d.get("flags", [])
        rd = "access" in flags
        wr = any(f in flags for f in ("insert", "delete", "update"))
        bs = d.get("begin_search", [])
        bsd = dict(zip(bs[0::2], bs[1::2]))
        idx = -1
        if bsd.get("type") == "index":
            spec2 = dict(zip(bsd["spec"][0::2], bsd["spec"][1::2]))
            idx = spec2.get("index", -1)
        out.append((idx, rd, wr, flags))
    return out
rows = {}
def walk(entry):
    name = entry[0].lower()
    rows[name] = keyspecs(entry)
    for sub in entry[9] if len(entry) > 9 else []:
        walk(sub)
for e in info:
    walk(e)
names = sorted(set(members) | set(rows))
print("//! Redis 7.0.15's command table as ACL sees it, generated from a running")
print("//! redis-server 7.0.15 by `scripts/gen_acl_tables.py` (ACL CAT and COMMAND): each")
print("//! command's ACL categories, and per key spec where its search begins (the")
print("//! argument index, -1 when found by keyword) and whether it reads and/or writes")
print("//! the key (Redis's ACCESS; INSERT, DELETE or UPDATE), with the spec's flags as")
print("//! COMMAND lists them (COMMAND GETKEYSANDFLAGS answers with them). Do not edit by hand.")
print()
print("/// A key spec: (begin index or -1, reads, writes, flags).")
print("pub type KeySpec = (i32, bool, bool, &'static [&'static str]);")
print()
print("/// (name, categories, key specs).")
print("pub type Row = (&'static str, &'static [&'static str], &'static [KeySpec]);")
print()
print("pub const COMMANDS: &[Row] = &[")
for n in names:
    cs = ", ".join(f'"{c}"' for c in members.get(n, []))
    ks = ", ".join(
        f"({i}, {str(a).lower()}, {str(b).lower()}, &[{', '.join(chr(34) + f + chr(34) for f in fl)}])" for i, a, b, fl in rows.get(n, [])
    )
    print(f'    ("{n}", &[{cs}], &[{ks}]),')
print("];")
