//! The dashboard's static files, compiled into the binary (nothing is
//! fetched from elsewhere) and served with an ETag and a cache lifetime.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// (path under /static, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/app.js"),
    ),
    (
        "theme-init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/theme-init.js"),
    ),
    (
        "vendor/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/vendor/htmx.min.js"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../static/vendor/uPlot.min.css"),
    ),
    (
        "vendor/htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../static/vendor/htmx.LICENSE"),
    ),
    (
        "vendor/uplot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../static/vendor/uplot.LICENSE"),
    ),
];

/// A file's ETag: a short hash of its bytes.
fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..16])
}

pub async fn serve(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let tag = etag(bytes);
    let cache = (
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600, must-revalidate"),
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [cache]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::ETAG,
                HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\"")),
            ),
            cache,
        ],
        *bytes,
    )
        .into_response()
}
