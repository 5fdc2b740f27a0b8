//! Geo commands: GEOADD, GEOPOS, GEODIST, GEOHASH, GEORADIUS[_RO],
//! GEORADIUSBYMEMBER[_RO], GEOSEARCH and GEOSEARCHSTORE.
//!
//! A geo set is a sorted set whose scores are 52-bit geohashes ([`super::geohash`]),
//! so ZSCORE, ZRANGE and the rest see exactly what Redis would store. A search scans
//! the score ranges of the cells covering the area, in Redis's order, and keeps the
//! points inside the shape; with ASC/DESC (or COUNT, which implies ASC) the results
//! are sorted by distance, stably.
//!
//! GEORADIUS and GEORADIUSBYMEMBER may STORE, so they are writes (as in Redis; the
//! `_RO` forms are reads). Their STORE key is a second key in the arguments
//! (`movablekeys`): in a multi-stripe array it must share the source's slot.

use std::ops::Bound;

use bytes::Bytes;

use super::flags::*;
use super::geohash::{self, Search, Shape};
use super::*;
use crate::protocol::reply::Reply;
use crate::store::value::{Blob, Value, ZSet};

const G: &str = "geo";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "geoadd",
        -5,
        WRITE | DENYOOM,
        (1, 1, 1),
        G,
        "Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
        Handler::Write(geoadd),
    ),
    spec(
        "geopos",
        -2,
        READONLY,
        (1, 1, 1),
        G,
        "Returns the longitude and latitude of members from a geospatial index.",
        Handler::Read(geopos),
    ),
    spec("geodist", -4, READONLY, (1, 1, 1), G, "Returns the distance between two members of a geospatial index.", Handler::Read(geodist)),
    spec("geohash", -2, READONLY, (1, 1, 1), G, "Returns members from a geospatial index as geohash strings.", Handler::Read(geohash_cmd)),
    spec(
        "georadius",
        -6,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        G,
        "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.",
        Handler::Write(georadius),
    )
    .movable(radius_keys),
    spec(
        "georadius_ro",
        -6,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members from a geospatial index that are within a distance from a coordinate.",
        Handler::Read(georadius_ro),
    ),
    spec(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        G,
        "Queries a geospatial index for members within a distance from a member, optionally stores the result.",
        Handler::Write(georadiusbymember),
    )
    .movable(by_member_keys),
    spec(
        "georadiusbymember_ro",
        -5,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members from a geospatial index that are within a distance from a member.",
        Handler::Read(georadiusbymember_ro),
    ),
    spec(
        "geosearch",
        -7,
        READONLY,
        (1, 1, 1),
        G,
        "Queries a geospatial index for members inside an area of a box or a circle.",
        Handler::Read(geosearch),
    ),
    spec(
        "geosearchstore",
        -8,
        WRITE | DENYOOM,
        (1, 2, 1),
        G,
        "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.",
        Handler::Write(geosearchstore),
    ),
];

const ERR_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const ERR_MEMBER: &str = "ERR could not decode requested zset member";
const ERR_COUNT: &str = "ERR COUNT must be > 0";
const ERR_ANY: &str = "ERR the ANY argument requires COUNT argument";

// --- argument helpers ---

/// A longitude, latitude pair within Redis's limits.
fn long_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Reply> {
    let (lon, lat) = (float_arg(lon)?, float_arg(lat)?);
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon) || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat) {
        return Err(Reply::error(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

/// Metres per unit of `m`, `km`, `ft` or `mi`.
fn unit(arg: &[u8]) -> Result<f64, Reply> {
    match () {
        _ if is(arg, "m") => Ok(1.0),
        _ if is(arg, "km") => Ok(1000.0),
        _ if is(arg, "ft") => Ok(0.3048),
        _ if is(arg, "mi") => Ok(1609.34),
        _ => Err(Reply::err(ERR_UNIT)),
    }
}

/// A length that must be a non-negative number, with Redis's messages.
fn length(arg: &[u8], not_number: &'static str, negative: &'static str) -> Result<f64, Reply> {
    let value = parse_double(arg).ok_or(Reply::err(not_number))?;
    if value < 0.0 {
        return Err(Reply::err(negative));
    }
    Ok(value)
}

/// `radius unit`: the radius and metres per unit.
fn radius(args: &[Bytes]) -> Result<(f64, f64), Reply> {
    let r = length(&args[0], "ERR need numeric radius", "ERR radius cannot be negative")?;
    Ok((r, unit(&args[1])?))
}

/// Formats a distance as Redis does: rounded (half to even) to 4 decimals.
fn distance_reply(d: f64) -> Reply {
    if d == 0.0 {
        return Reply::bulk(b"0.0000");
    }
    let scaled = (d * 10_000.0).round_ties_even();
    let negative = scaled < 0.0;
    let digits = format!("{:05}", scaled.abs() as u64);
    let (int, frac) = digits.split_at(digits.len() - 4);
    Reply::Bulk(Bytes::from(format!("{}{int}.{frac}", if negative { "-" } else { "" })))
}

fn position_reply(score: f64) -> Reply {
    let (lon, lat) = geohash::position_of(score);
    Reply::Array(vec![Reply::HumanDouble(lon), Reply::HumanDouble(lat)])
}

// --- GEOADD, GEOPOS, GEODIST, GEOHASH ---

/// GEOADD key [NX|XX] [CH] longitude latitude member …: ZADD with geohash scores.
fn geoadd(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut first = 2;
    while args.get(first).is_some_and(|a| is(a, "nx") || is(a, "xx") || is(a, "ch")) {
        first += 1;
    }
    let options = &args[2..first];
    let (nx, xx) = (options.iter().any(|a| is(a, "nx")), options.iter().any(|a| is(a, "xx")));
    let triples = &args[first..];
    if !triples.len().is_multiple_of(3) || (nx && xx) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let mut zadd_args: Vec<Bytes> = Vec::with_capacity(first + triples.len() / 3 * 2);
    zadd_args.push(Bytes::from_static(b"zadd"));
    zadd_args.extend_from_slice(&args[1..first]);
    for triple in triples.chunks_exact(3) {
        let (lon, lat) = long_lat(&triple[0], &triple[1])?;
        let score = geohash::score_of(lon, lat).ok_or(Reply::err(ERR_NOT_FLOAT))?;
        zadd_args.push(Bytes::from(int_bytes(score as i64)));
        zadd_args.push(triple[2].clone());
    }
    super::zsets::zadd(ctx, &zadd_args)
}

fn read_geo<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a ZSet>, Reply> {
    ctx.get(key).map(Value::as_zset).transpose()
}

fn geopos(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let z = read_geo(ctx, &args[1])?;
    let positions = args[2..].iter().map(|m| z.and_then(|z| z.score(m)).map_or(Reply::NilArray, position_reply));
    Ok(Reply::Array(positions.collect()))
}

fn geodist(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let Some(z) = read_geo(ctx, &args[1])? else { return Ok(Reply::Nil) };
    let (Some(a), Some(b)) = (z.score(&args[2]), z.score(&args[3])) else { return Ok(Reply::Nil) };
    let ((lon1, lat1), (lon2, lat2)) = (geohash::position_of(a), geohash::position_of(b));
    Ok(distance_reply(geohash::distance(lon1, lat1, lon2, lat2) / to_meters))
}

fn geohash_cmd(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let z = read_geo(ctx, &args[1])?;
    let hashes = args[2..]
        .iter()
        .map(|m| z.and_then(|z| z.score(m)).and_then(geohash::geohash_string).map_or(Reply::Nil, |h| Reply::Bulk(Bytes::from(h))));
    Ok(Reply::Array(hashes.collect()))
}

// --- searches ---

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Radius,
    ByMember,
    Search,
    SearchStore,
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// Everything a search command asked for.
struct Query {
    search: Option<Search>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    order: Order,
    count: usize,
    any: bool,
    store: Option<Bytes>,
    store_dist: bool,
}

/// One point found.
struct Found {
    member: Blob,
    score: f64,
    lon: f64,
    lat: f64,
    dist_meters: f64,
}

/// The centre and shape of GEORADIUS / GEORADIUSBYMEMBER from their fixed arguments.
fn fixed_search(variant: Variant, args: &[Bytes], z: Option<&ZSet>) -> Result<Option<Search>, Reply> {
    match variant {
        Variant::Radius => {
            let (longitude, latitude) = long_lat(&args[2], &args[3])?;
            let (radius, to_meters) = radius(&args[4..6])?;
            Ok(Some(Search { longitude, latitude, shape: Shape::Circle { radius }, to_meters }))
        }
        // No source key: arguments are still parsed, for the right reply.
        Variant::ByMember if z.is_none() => Ok(None),
        Variant::ByMember => {
            let score = z.and_then(|z| z.score(&args[2])).ok_or(Reply::err(ERR_MEMBER))?;
            let (longitude, latitude) = geohash::position_of(score);
            let (radius, to_meters) = radius(&args[3..5])?;
            Ok(Some(Search { longitude, latitude, shape: Shape::Circle { radius }, to_meters }))
        }
        Variant::Search | Variant::SearchStore => Ok(None),
    }
}

/// GEORADIUS's keys: the source and every STORE or STOREDIST destination, walking
/// the options as [`parse_query`] does (the last destination is the one written;
/// Redis's key specs find the first of each keyword, so for one destination, the
/// usual case, both agree). Routing and ACL checks then see the key written.
fn store_keys(args: &[Bytes], base: usize) -> Vec<usize> {
    let mut keys = vec![1];
    let mut i = base;
    while let Some(arg) = args.get(i) {
        if is(arg, "count") {
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist")) && i + 1 < args.len() {
            keys.push(i + 1);
            i += 1;
        }
        i += 1;
    }
    keys
}

fn radius_keys(args: &[Bytes]) -> Vec<usize> {
    store_keys(args, 6)
}

fn by_member_keys(args: &[Bytes]) -> Vec<usize> {
    store_keys(args, 5)
}

/// Parses a search command in Redis's order; `z` is the source (for FROMMEMBER).
fn parse_query(variant: Variant, args: &[Bytes], z: Option<&ZSet>, read_only: bool) -> Result<Query, Reply> {
    let base = match variant {
        Variant::Radius => 6,
        Variant::ByMember => 5,
        Variant::Search => 2,
        Variant::SearchStore => 3,
    };
    let searching = matches!(variant, Variant::Search | Variant::SearchStore);
    let mut q = Query {
        search: fixed_search(variant, args, z)?,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        order: Order::None,
        count: 0,
        any: false,
        store: (variant == Variant::SearchStore).then(|| args[1].clone()),
        store_dist: false,
    };
    let mut centre: Option<(f64, f64)> = None;
    let mut shape: Option<(Shape, f64)> = None;
    let (mut from_member, mut from_loc, mut by_box, mut by_radius) = (false, false, false, false);
    let rest = &args[base.min(args.len())..];
    let mut i = 0;
    while let Some(arg) = rest.get(i) {
        let left = rest.len() - i - 1;
        match () {
            _ if is(arg, "withdist") => q.with_dist = true,
            _ if is(arg, "withhash") => q.with_hash = true,
            _ if is(arg, "withcoord") => q.with_coord = true,
            _ if is(arg, "any") => q.any = true,
            _ if is(arg, "asc") => q.order = Order::Asc,
            _ if is(arg, "desc") => q.order = Order::Desc,
            _ if is(arg, "count") && left >= 1 => {
                let n = int_arg(&rest[i + 1])?;
                if n <= 0 {
                    return Err(Reply::err(ERR_COUNT));
                }
                q.count = usize::try_from(n).unwrap_or(usize::MAX);
                i += 1;
            }
            _ if (is(arg, "store") || is(arg, "storedist")) && left >= 1 && !read_only && !searching => {
                q.store = Some(rest[i + 1].clone());
                q.store_dist = is(arg, "storedist");
                i += 1;
            }
            _ if is(arg, "storedist") && variant == Variant::SearchStore => q.store_dist = true,
            _ if is(arg, "frommember") && left >= 1 && searching && !from_loc => {
                if let Some(z) = z {
                    let score = z.score(&rest[i + 1]).ok_or(Reply::err(ERR_MEMBER))?;
                    centre = Some(geohash::position_of(score));
                }
                from_member = true;
                i += 1;
            }
            _ if is(arg, "fromlonlat") && left >= 2 && searching && !from_member => {
                centre = Some(long_lat(&rest[i + 1], &rest[i + 2])?);
                from_loc = true;
                i += 2;
            }
            _ if is(arg, "byradius") && left >= 2 && searching && !by_box => {
                let (radius, to_meters) = radius(&rest[i + 1..i + 3])?;
                shape = Some((Shape::Circle { radius }, to_meters));
                by_radius = true;
                i += 2;
            }
            _ if is(arg, "bybox") && left >= 3 && searching && !by_radius => {
                let width = length(&rest[i + 1], "ERR need numeric width", "ERR height or width cannot be negative")?;
                let height = length(&rest[i + 2], "ERR need numeric height", "ERR height or width cannot be negative")?;
                let to_meters = unit(&rest[i + 3])?;
                shape = Some((Shape::Box { width, height }, to_meters));
                by_box = true;
                i += 3;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    check_query(variant, args, &q, from_member || from_loc, shape.is_some())?;
    if searching {
        if let (Some((longitude, latitude)), Some((shape, to_meters))) = (centre, shape) {
            q.search = Some(Search { longitude, latitude, shape, to_meters });
        }
    }
    Ok(q)
}

/// The option conflicts Redis checks once everything is parsed.
fn check_query(variant: Variant, args: &[Bytes], q: &Query, has_centre: bool, has_shape: bool) -> Result<(), Reply> {
    let name = String::from_utf8_lossy(&args[0]);
    if q.store.is_some() && (q.with_dist || q.with_hash || q.with_coord) {
        let what = if variant == Variant::SearchStore { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(Reply::error(format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")));
    }
    let searching = matches!(variant, Variant::Search | Variant::SearchStore);
    if searching && !has_centre {
        return Err(Reply::error(format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")));
    }
    if searching && !has_shape {
        return Err(Reply::error(format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")));
    }
    if q.any && q.count == 0 {
        return Err(Reply::err(ERR_ANY));
    }
    Ok(())
}

/// The points of `z` inside `search`, cell by cell in Redis's order; with `limit`
/// (ANY) it stops as soon as that many are found.
fn find(z: &ZSet, search: &Search, limit: usize) -> Vec<Found> {
    let cells = search.cells();
    let mut found = Vec::new();
    let mut last: Option<usize> = None;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_none() {
            continue;
        }
        // Redis skips a cell equal to the last one scanned, except right after the
        // centre (its `last_processed` starts at the centre's index, 0).
        if last.is_some_and(|l| l != 0 && cells[l] == *cell) {
            continue;
        }
        if limit != 0 && found.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let low = (crate::store::value::Score(min), Blob::default());
        for (score, member) in z.range(Bound::Included(low), Bound::Unbounded).take_while(|(s, _)| s.0 < max) {
            let (lon, lat) = geohash::position_of(score.0);
            if let Some(dist_meters) = search.distance_if_inside(lon, lat) {
                found.push(Found { member: Blob::from(member), score: score.0, lon, lat, dist_meters });
            }
            if limit != 0 && found.len() >= limit {
                break;
            }
        }
        last = Some(i);
    }
    found
}

/// Runs a parsed query against `z`: the points in reply order, already cut to COUNT.
fn run_query(z: &ZSet, q: &Query) -> Vec<Found> {
    let Some(search) = &q.search else { return Vec::new() };
    let mut found = find(z, search, if q.any { q.count } else { 0 });
    let order = if q.count != 0 && q.order == Order::None && !q.any { Order::Asc } else { q.order };
    match order {
        Order::Asc => found.sort_by(|a, b| a.dist_meters.total_cmp(&b.dist_meters)),
        Order::Desc => found.sort_by(|a, b| b.dist_meters.total_cmp(&a.dist_meters)),
        Order::None => {}
    }
    if q.count != 0 {
        found.truncate(q.count);
    }
    found
}

fn found_reply(found: Vec<Found>, q: &Query) -> Reply {
    let to_meters = q.search.map_or(1.0, |s| s.to_meters);
    let options = usize::from(q.with_dist) + usize::from(q.with_hash) + usize::from(q.with_coord);
    let items = found.into_iter().map(|f| {
        let member = Reply::Bulk(Bytes::from(f.member.into_vec()));
        if options == 0 {
            return member;
        }
        let mut item = vec![member];
        if q.with_dist {
            item.push(distance_reply(f.dist_meters / to_meters));
        }
        if q.with_hash {
            item.push(Reply::Int(f.score as i64));
        }
        if q.with_coord {
            item.push(Reply::Array(vec![Reply::HumanDouble(f.lon), Reply::HumanDouble(f.lat)]));
        }
        Reply::Array(item)
    });
    Reply::Array(items.collect())
}

/// A read-only search (GEORADIUS_RO, GEORADIUSBYMEMBER_RO, GEOSEARCH).
fn search_read(ctx: &mut ReadCtx, args: &[Bytes], variant: Variant) -> CmdResult {
    let z = read_geo(ctx, &args[1])?;
    let q = parse_query(variant, args, z, true)?;
    let Some(z) = z else { return Ok(Reply::Array(Vec::new())) };
    Ok(found_reply(run_query(z, &q), &q))
}

/// A search that may STORE (GEORADIUS, GEORADIUSBYMEMBER, GEOSEARCHSTORE).
fn search_write(ctx: &mut WriteCtx, args: &[Bytes], variant: Variant) -> CmdResult {
    let source = if variant == Variant::SearchStore { &args[2] } else { &args[1] };
    let z = ctx.get(source).map(Value::as_zset).transpose()?;
    let q = parse_query(variant, args, z, false)?;
    let found = z.map(|z| run_query(z, &q)).unwrap_or_default();
    let Some(dest) = q.store.clone() else {
        return Ok(found_reply(found, &q));
    };
    let to_meters = q.search.map_or(1.0, |s| s.to_meters);
    let count = found.len();
    if count == 0 {
        if ctx.delete(&dest) {
            ctx.notify(b'g', "del", &dest);
        }
        return Ok(Reply::Int(0));
    }
    let mut stored = ZSet::new();
    for f in found {
        stored.insert(&f.member, if q.store_dist { f.dist_meters / to_meters } else { f.score });
    }
    ctx.set(&dest, Value::ZSet(stored));
    let event = if variant == Variant::SearchStore { "geosearchstore" } else { "georadiusstore" };
    ctx.notify(b'z', event, &dest);
    Ok(Reply::Int(count as i64))
}

fn georadius(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    search_write(ctx, args, Variant::Radius)
}

fn georadiusbymember(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    search_write(ctx, args, Variant::ByMember)
}

fn geosearchstore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    search_write(ctx, args, Variant::SearchStore)
}

fn georadius_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    search_read(ctx, args, Variant::Radius)
}

fn georadiusbymember_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    search_read(ctx, args, Variant::ByMember)
}

fn geosearch(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    search_read(ctx, args, Variant::Search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run};
    use crate::store::value::WRONGTYPE;
    use crate::store::Store;

    const T: u64 = 1_000;

    fn sicily() -> Store {
        let mut store = Store::new();
        let added = run(&mut store, T, &["geoadd", "Sicily", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"]);
        assert_eq!(added, Reply::Int(2));
        store
    }

    fn names(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }

    #[test]
    fn geoadd_stores_redis_scores_and_reads_them_back() {
        let mut store = sicily();
        assert_eq!(run(&mut store, T, &["zscore", "Sicily", "Palermo"]), Reply::Double(3479099956230698.0));
        assert_eq!(
            run(&mut store, T, &["geopos", "Sicily", "Palermo", "nowhere"]),
            Reply::Array(vec![
                Reply::Array(vec![Reply::HumanDouble(13.361389338970184), Reply::HumanDouble(38.1155563954963)]),
                Reply::NilArray
            ])
        );
        assert_eq!(run(&mut store, T, &["geodist", "Sicily", "Palermo", "Catania"]), bulk("166274.1516"));
        assert_eq!(run(&mut store, T, &["geodist", "Sicily", "Palermo", "Catania", "km"]), bulk("166.2742"));
        assert_eq!(run(&mut store, T, &["geodist", "Sicily", "Palermo", "Catania", "mi"]), bulk("103.3182"));
        assert_eq!(run(&mut store, T, &["geodist", "Sicily", "Palermo", "nowhere"]), Reply::Nil);
        assert_eq!(
            run(&mut store, T, &["geohash", "Sicily", "Palermo", "Catania", "x"]),
            Reply::Array(vec![bulk("sqc8b49rny0"), bulk("sqdtr74hyu0"), Reply::Nil])
        );
    }

    #[test]
    fn geoadd_options_and_errors() {
        let mut store = sicily();
        assert_eq!(run(&mut store, T, &["geoadd", "Sicily", "xx", "ch", "13.5", "38.1", "Palermo", "1", "1", "New"]), Reply::Int(1));
        assert_eq!(run(&mut store, T, &["zcard", "Sicily"]), Reply::Int(2));
        assert_eq!(run(&mut store, T, &["geoadd", "Sicily", "nx", "xx", "1", "1", "a"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["geoadd", "Sicily", "1", "1"]), err("ERR wrong number of arguments for 'geoadd' command"));
        assert_eq!(run(&mut store, T, &["geoadd", "Sicily", "1", "1", "a", "2"]), err(ERR_SYNTAX));
        assert_eq!(
            run(&mut store, T, &["geoadd", "Sicily", "200", "100", "a"]),
            err("ERR invalid longitude,latitude pair 200.000000,100.000000")
        );
        assert_eq!(run(&mut store, T, &["geoadd", "Sicily", "x", "1", "a"]), err(ERR_NOT_FLOAT));
        run(&mut store, T, &["set", "s", "v"]);
        assert_eq!(run(&mut store, T, &["geoadd", "s", "1", "1", "a"]), err(WRONGTYPE));
        assert_eq!(run(&mut store, T, &["geopos", "s", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn georadius_finds_and_orders_by_distance() {
        let mut store = sicily();
        let near = run(&mut store, T, &["georadius", "Sicily", "15", "37", "200", "km", "asc"]);
        assert_eq!(near, names(&["Catania", "Palermo"]));
        let far_first = run(&mut store, T, &["georadius_ro", "Sicily", "15", "37", "200", "km", "desc", "count", "1"]);
        assert_eq!(far_first, names(&["Palermo"]));
        let with = run(&mut store, T, &["georadius", "Sicily", "15", "37", "100", "km", "withdist", "withhash", "withcoord"]);
        let Reply::Array(items) = with else { panic!() };
        assert_eq!(items.len(), 1);
        let Reply::Array(item) = &items[0] else { panic!() };
        assert_eq!(item[0], bulk("Catania"));
        assert_eq!(item[1], bulk("56.4413"));
        assert_eq!(item[2], Reply::Int(3479447370796909));
        let by_member = run(&mut store, T, &["georadiusbymember", "Sicily", "Palermo", "100", "km"]);
        assert_eq!(by_member, names(&["Palermo"]));
        assert_eq!(run(&mut store, T, &["georadiusbymember", "Sicily", "nobody", "100", "km"]), err(ERR_MEMBER));
        assert_eq!(run(&mut store, T, &["georadius", "missing", "15", "37", "200", "km"]), names(&[]));
    }

    #[test]
    fn geosearch_by_radius_and_box() {
        let mut store = sicily();
        let circle = run(&mut store, T, &["geosearch", "Sicily", "fromlonlat", "15", "37", "byradius", "200", "km", "asc"]);
        assert_eq!(circle, names(&["Catania", "Palermo"]));
        let boxed = run(&mut store, T, &["geosearch", "Sicily", "frommember", "Catania", "bybox", "100", "100", "km"]);
        assert_eq!(boxed, names(&["Catania"]));
        let name = "GEOSEARCH";
        assert_eq!(
            run(&mut store, T, &[name, "Sicily", "byradius", "1", "km", "asc", "withdist"]),
            err("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH")
        );
        assert_eq!(
            run(&mut store, T, &["geosearch", "Sicily", "fromlonlat", "1", "1", "asc", "withdist"]),
            err("ERR exactly one of BYRADIUS and BYBOX can be specified for geosearch")
        );
        assert_eq!(run(&mut store, T, &["geosearch", "Sicily", "fromlonlat", "1", "1", "byradius", "1", "km", "any"]), err(ERR_ANY));
        assert_eq!(
            run(&mut store, T, &["geosearch", "Sicily", "fromlonlat", "1", "1", "byradius", "1", "km", "count", "0"]),
            err(ERR_COUNT)
        );
        assert_eq!(
            run(&mut store, T, &["geosearch", "Sicily", "fromlonlat", "1", "1", "byradius", "-1", "km"]),
            err("ERR radius cannot be negative")
        );
        assert_eq!(run(&mut store, T, &["geosearch", "Sicily", "fromlonlat", "1", "1", "byradius", "1", "yd"]), err(ERR_UNIT));
        assert_eq!(
            run(&mut store, T, &["geosearch", "Sicily", "fromlonlat", "1", "1", "byradius", "1", "km", "store", "x"]),
            err(ERR_SYNTAX)
        );
    }

    #[test]
    fn store_variants_write_a_sorted_set_or_delete_it() {
        let mut store = sicily();
        assert_eq!(run(&mut store, T, &["georadius", "Sicily", "15", "37", "200", "km", "store", "out"]), Reply::Int(2));
        assert_eq!(run(&mut store, T, &["zscore", "out", "Palermo"]), Reply::Double(3479099956230698.0));
        assert_eq!(
            run(&mut store, T, &["geosearchstore", "out2", "Sicily", "fromlonlat", "15", "37", "byradius", "200", "km", "storedist"]),
            Reply::Int(2)
        );
        let Reply::Double(d) = run(&mut store, T, &["zscore", "out2", "Catania"]) else { panic!() };
        assert!((d - 56.4413).abs() < 0.001, "{d}");
        assert_eq!(
            run(&mut store, T, &["georadius", "Sicily", "15", "37", "200", "km", "store", "out", "withdist"]),
            err("ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
        );
        assert_eq!(run(&mut store, T, &["georadius_ro", "Sicily", "15", "37", "200", "km", "store", "out"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["georadius", "missing", "15", "37", "200", "km", "store", "out"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["exists", "out"]), Reply::Int(0));
    }

    #[test]
    fn distances_print_with_four_decimals_half_to_even() {
        assert_eq!(distance_reply(0.0), bulk("0.0000"));
        assert_eq!(distance_reply(1.23456), bulk("1.2346"));
        assert_eq!(distance_reply(0.00004), bulk("0.0000"));
        assert_eq!(distance_reply(12345.6), bulk("12345.6000"));
    }
}
