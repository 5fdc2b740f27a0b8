//! Helpers for tests of the management port: a stripe whose config has a management
//! token, and the API read with a real HTTP client (reqwest).

use std::time::Duration;

use serde_json::Value;

use super::cluster::{Cluster, Spec};

/// The management token the test configs carry.
pub const TOKEN: &str = "test-management-token-0123456789";

/// A stripe with a management token, started and formed.
pub fn stripe_with_token(spec: Spec) -> Cluster {
    let mut cluster = Cluster::configure(spec);
    cluster.add_cluster_setting(&format!("management-token = \"{TOKEN}\"")).expect("add the token to the config");
    cluster.start_all();
    cluster
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client")
}

/// GET `path` from member `i`'s management port: (status, JSON body).
pub fn get(cluster: &Cluster, i: usize, path: &str) -> Result<(u16, Value), String> {
    let answer = http().get(format!("{}{path}", cluster.management_url(i))).send().map_err(|e| e.to_string())?;
    let status = answer.status().as_u16();
    let body = answer.json::<Value>().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// POST `body` to `path` on member `i`, with `token` as bearer if given: (status, JSON).
pub fn post(cluster: &Cluster, i: usize, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = http()
        .post(format!("{}{path}", cluster.management_url(i)))
        .timeout(Duration::from_secs(120))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = answer.status().as_u16();
    (status, answer.json::<Value>().unwrap_or(Value::Null))
}

/// The array as member `i`'s API shows it.
pub fn view(cluster: &Cluster, i: usize) -> Option<Value> {
    match get(cluster, i, "/api/v1/cluster") {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// The report of server `name` in a cluster view.
pub fn server<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["stripes"].as_array()?.iter().flat_map(|s| s["servers"].as_array().into_iter().flatten()).find(|s| s["name"] == name)
}

/// (state, light) of server `name` as member `i` shows it.
pub fn state_on(cluster: &Cluster, i: usize, name: &str) -> Option<(String, String)> {
    let view = view(cluster, i)?;
    let s = server(&view, name)?;
    Some((s["state"].as_str()?.to_string(), s["light"].as_str()?.to_string()))
}

/// A program the test needs; fails the test with how to install it when it is missing.
pub fn require_program(program: &str) -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file()));
    found.unwrap_or_else(|| panic!("{program} is not installed: run `bash scripts/test-deps.sh` (it installs the test peers)"))
}
