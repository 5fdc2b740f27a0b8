//! The web console in a real browser: Debian's chromium, headless, driven through
//! chromedriver (WebDriver, with fantoccini). The console is loaded from a mirror, shows
//! three lights, and when the test kills the active the page turns it red and another
//! server green without a reload; it goes on when its own server changes role.
//! Screenshots are kept under the target directory (`console-screenshots/`).

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use support::cluster::Spec;
use support::free_ports;
use support::management::{require_program, stripe_with_token};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp: the screenshots go beside it, in <target>.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().map(|p| p.join("console-screenshots")).expect("a target directory");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// Every server card on the page: (name, light, state).
async fn cards(client: &Client) -> Vec<(String, String, String)> {
    let script = "return Array.from(document.querySelectorAll('.server')).map(e => [e.id.replace('server-', ''), e.dataset.light, e.dataset.state]);";
    let Ok(Value::Array(rows)) = client.execute(script, vec![]).await else { return Vec::new() };
    rows.iter().filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_str()?.to_string(), r[2].as_str()?.to_string()))).collect()
}

async fn wait_for_page(
    client: &Client,
    deadline: Duration,
    mut check: impl FnMut(&[(String, String, String)]) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if check(&cards(client).await) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    let path = screenshots_dir().join(name);
    std::fs::write(&path, png).expect("save the screenshot");
    tracing::info!(path = %path.display(), "screenshot saved");
}

#[test]
fn console_shows_the_kill_of_the_active_live_in_chromium() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let chromium = require_program("chromium");
    let chromedriver = require_program("chromedriver");
    let mut cluster = stripe_with_token(Spec::servers(3));
    let active = cluster.wait_formed();
    let names: Vec<String> = cluster.members.iter().map(|m| m.name.clone()).collect();
    let mirror = (0..3).find(|&i| i != active).expect("a mirror");

    let port = free_ports(1)[0];
    let profile = tempfile::tempdir().expect("a browser profile");
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()), "--window-size=1400,1100",
                ],
            }),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut client = None;
        let started = Instant::now();
        while client.is_none() && started.elapsed() < Duration::from_secs(30) {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&webdriver).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::info!(error = %e, "chromedriver not ready yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let client = client.expect("a browser session through chromedriver");

        tracing::info!("--- load the console from a mirror: three lights, one green, two cyan");
        client.goto(&format!("{}/", cluster.management_url(mirror))).await.expect("load the console");
        let formed = wait_for_page(&client, Duration::from_secs(20), |cards| {
            cards.len() == 3 && cards.iter().all(|(name, light, _)| light == if *name == names[active] { "green" } else { "cyan" })
        })
        .await;
        assert!(formed.is_some(), "the console shows {:?}", cards(&client).await);
        // Colours exactly as DESIGN.md §2.
        let colour = client
            .execute("return getComputedStyle(document.querySelector('.server[data-light=green] .light')).backgroundColor;", vec![])
            .await
            .expect("a style");
        assert_eq!(colour, json!("rgb(0, 128, 0)"), "green is CSS green");
        client.execute("window.notReloaded = true;", vec![]).await.expect("mark the page");
        screenshot(&client, "1-stripe-formed.png").await;

        tracing::info!("--- kill -9 the active: red, and another server green, without a reload");
        cluster.kill9(active);
        let shown = wait_for_page(&client, Duration::from_secs(15), |cards| {
            cards.iter().any(|(n, l, _)| *n == names[active] && l == "red")
                && cards.iter().any(|(n, l, _)| *n != names[active] && l == "green")
        })
        .await;
        assert!(shown.is_some(), "the console shows {:?}\n{}", cards(&client).await, cluster.all_stderr());
        tracing::info!(ms = shown.expect("shown").as_millis() as u64, "the page showed the dead active red and a new active green");
        assert_eq!(
            client.execute("return window.notReloaded === true;", vec![]).await.expect("ask the page"),
            json!(true),
            "the page reloaded"
        );
        screenshot(&client, "2-active-killed.png").await;

        tracing::info!("--- the killed server returns; the console's own server hands leadership over and goes on");
        cluster.spawn(active);
        let all: Vec<usize> = (0..3).collect();
        let now_active = cluster.wait_stable(&all, Duration::from_secs(30));
        if now_active == mirror {
            // The CLI here: reqwest's blocking client cannot run inside this runtime.
            let (ok, text) = cluster.ctl(&["failover", "--stripe", "A"]);
            assert!(ok, "{text}");
        }
        let settled = wait_for_page(&client, Duration::from_secs(20), |cards| {
            cards.iter().any(|(n, l, _)| *n == names[mirror] && l == "cyan")
                && cards.iter().filter(|(_, l, _)| l == "green").count() == 1
                && cards.iter().filter(|(_, l, _)| l == "cyan").count() == 2
        })
        .await;
        assert!(settled.is_some(), "the console shows {:?}", cards(&client).await);
        assert_eq!(
            client.execute("return window.notReloaded === true;", vec![]).await.expect("ask the page"),
            json!(true),
            "the page reloaded"
        );
        screenshot(&client, "3-serving-server-is-a-mirror.png").await;
        client.close().await.expect("close the browser");
    });
}
