//! The web console: one page, its script and its style sheet, compiled into the
//! binary (no CDN, nothing fetched from the internet). The page reads the live feed
//! (`/api/v1/live`) and the API of the server that served it; since every server
//! answers for the whole array, it keeps working when that server becomes a mirror.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// The console's files change only with the binary; a short cache keeps an open
/// console's reloads cheap without serving an old one for long after an upgrade.
const CACHE: &str = "max-age=60";

pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], INDEX_HTML)
}

pub async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], CONSOLE_JS)
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], CONSOLE_CSS)
}
