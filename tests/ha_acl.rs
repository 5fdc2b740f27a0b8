//! ACL users in a stripe of three real servers (issue 15): users are replicated
//! state, so a user created on the active is enforced by every mirror, by the new
//! active after kill -9 of the old one, and after every server restarts from its
//! Fast Restart data; a user removed on one server is refused on every server.

mod support;

use std::time::Duration;

use support::cluster::{wait_until, Cluster, Spec};

const DEADLINE: Duration = Duration::from_secs(20);

fn reply(cluster: &Cluster, i: usize, cmds: &[&[&str]]) -> Vec<Result<redis::Value, String>> {
    let Ok(mut con) = cluster.conn(i) else { return vec![Err("no connection".into())] };
    cmds.iter()
        .map(|args| {
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            cmd.query::<redis::Value>(&mut con).map_err(|e| e.to_string())
        })
        .collect()
}

/// `app` logs in on server `i`, may write its keys and nothing else.
fn app_is_enforced(cluster: &Cluster, i: usize) -> bool {
    let got = reply(cluster, i, &[&["AUTH", "app", "apppw"], &["SET", "app:1", "v"], &["SET", "other", "v"], &["FLUSHALL"]]);
    matches!(got.as_slice(), [Ok(_), Ok(_), Err(key), Err(cmd)]
        if key.contains("NOPERM") && key.contains("keys") && cmd.contains("no permissions to run the 'flushall' command"))
}

fn refused_login(cluster: &Cluster, i: usize, user: &str) -> bool {
    let got = reply(cluster, i, &[&["AUTH", user, "pw"]]);
    matches!(got.as_slice(), [Err(e)] if e.contains("WRONGPASS"))
}

#[test]
fn a_user_created_on_the_active_is_enforced_after_kill9_and_after_a_fast_restart() {
    support::log_phases();
    let mut cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let all: Vec<usize> = (0..3).collect();

    tracing::info!("--- users created on the active");
    let got = reply(
        &cluster,
        active,
        &[&["ACL", "SETUSER", "app", "on", ">apppw", "+get", "+set", "~app:*"], &["ACL", "SETUSER", "gone", "on", ">pw", "+@all", "~*"]],
    );
    assert!(got.iter().all(|r| r.is_ok()), "{got:?}");
    for &i in &all {
        assert!(wait_until(DEADLINE, || app_is_enforced(&cluster, i)), "server {i} enforces app");
    }

    tracing::info!("--- kill -9 the active");
    cluster.kill9(active);
    let up: Vec<usize> = all.iter().copied().filter(|&i| i != active).collect();
    let next = cluster.wait_stable(&up, Duration::from_secs(30));
    assert_ne!(next, active);
    assert!(app_is_enforced(&cluster, next), "the new active enforces the user the old one created");

    tracing::info!("--- a user removed on the new active is refused everywhere");
    let got = reply(&cluster, next, &[&["ACL", "DELUSER", "gone"]]);
    assert_eq!(got, vec![Ok(redis::Value::Int(1))]);
    for &i in &up {
        assert!(wait_until(DEADLINE, || refused_login(&cluster, i, "gone")), "server {i} refuses the removed user");
    }
    tracing::info!("--- the old active restarts from its data and catches up");
    cluster.spawn(active);
    // Until it has applied the log's tail it enforces the users it had applied.
    let caught_up = || app_is_enforced(&cluster, active) && refused_login(&cluster, active, "gone");
    assert!(wait_until(Duration::from_secs(30), caught_up), "the restarted old active enforces the stripe's users");

    tracing::info!("--- a snapshot, then kill -9 of every server and a restart from Fast Restart data");
    let got = reply(&cluster, next, &[&["SAVE"]]);
    assert!(got.iter().all(|r| r.is_ok()), "{got:?}");
    for &i in &all {
        cluster.kill9(i);
    }
    cluster.start_all();
    let after = cluster.wait_formed();
    for &i in &all {
        let enforced = || app_is_enforced(&cluster, i) && refused_login(&cluster, i, "gone");
        assert!(wait_until(DEADLINE, enforced), "server {i} enforces app and refuses the removed user after the restart");
    }
    let list = reply(&cluster, after, &[&["ACL", "USERS"]]);
    assert_eq!(
        list,
        vec![Ok(redis::Value::Array(vec![redis::Value::BulkString(b"app".to_vec()), redis::Value::BulkString(b"default".to_vec())]))]
    );
    cluster.wait_converged(&all, DEADLINE);
}

#[test]
fn a_client_of_a_mirror_runs_as_its_user_when_the_default_user_is_locked() {
    support::log_phases();
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mirror = (active + 1) % 3;
    tracing::info!("--- the default user gets a password and loses its commands; app is created");
    let got = reply(
        &cluster,
        active,
        &[
            &["ACL", "SETUSER", "admin", "on", ">adminpw", "+@all", "~*", "&*"],
            &["ACL", "SETUSER", "app", "on", ">apppw", "+get", "+set", "+eval", "~app:*"],
            &["ACL", "SETUSER", "default", "resetpass", ">defaultpw", "-@all"],
        ],
    );
    assert!(got.iter().all(|r| r.is_ok()), "{got:?}");
    assert!(wait_until(DEADLINE, || app_is_enforced(&cluster, mirror)), "the mirror enforces app");
    tracing::info!("--- app's writes through the mirror reach the active; its refusals stay refused");
    let got = reply(
        &cluster,
        mirror,
        &[
            &["AUTH", "app", "apppw"],
            &["SET", "app:fwd", "v"],
            &["GET", "app:fwd"],
            &["SET", "other", "v"],
            &["EVAL", "return redis.call('set', 'other', 'v')", "0"],
            &["EVAL", "return redis.call('set', 'app:lua', 'v')", "0"],
        ],
    );
    assert!(got[1].is_ok() && got[2] == Ok(redis::Value::BulkString(b"v".to_vec())), "{got:?}");
    assert!(matches!(&got[3], Err(e) if e.contains("NOPERM")), "{got:?}");
    assert!(matches!(&got[4], Err(e) if e.contains("The user executing the script can't access at least one of the keys")), "{got:?}");
    assert!(got[5].is_ok(), "{got:?}");
    tracing::info!("--- a plain client cannot pass for a forwarding server");
    let got =
        reply(&cluster, active, &[&["AUTH", "default", "x"], &["HELLO", "2", "AUTH", "default", "", "SETNAME", "tandem-forward:evil"]]);
    assert!(got.iter().all(|r| matches!(r, Err(e) if e.contains("WRONGPASS"))), "{got:?}");
}
