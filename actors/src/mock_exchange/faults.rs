//! Faults the wire mock injects on request (`POST /mock/fault`), to test how the bot treats a
//! venue that answers wrongly: a venue error code (the request is not executed), or a broken
//! answer after the request *was* executed — the cases where the bot must not conclude that
//! nothing happened.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use super::wire::{Shared, WireState, err};

/// A failure the test wants for the next request to a path.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    /// Path prefix it applies to, e.g. `/order/submit`.
    pub path: String,
    /// Answer this venue error instead (HTTP 400, or 429 for 4290); nothing is executed.
    #[serde(default)]
    pub code: Option<u32>,
    /// With `code`: the HTTP status of the error. Alone: a plain-text proxy error with this
    /// status, nothing executed (`upstream connect error…`).
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Execute the request, then hold the answer this long (past the client's timeout).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Execute the request, then answer this way instead of the real answer.
    #[serde(default)]
    pub answer: Option<BrokenAnswer>,
}

/// How an answer is broken after the request was executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenAnswer {
    /// HTTP 200 whose body does not parse.
    Garbage,
    /// HTTP 200 with an empty body.
    Empty,
    /// An HTML error page (HTTP `http_status`, default 404) from something in front of the venue.
    Html,
    /// No answer at all: the connection stays open (the client times out).
    Hang,
    /// The answer starts, then the connection is cut.
    Reset,
}

/// The kind of order action a path carries, for the venue's budget count.
fn counted_kind(path: &str) -> Option<&'static str> {
    if path == "/order/submit" {
        Some("place")
    } else if path == "/order/cancel-all" {
        Some("cancel_all")
    } else if path.starts_with("/order/") && path.ends_with("/cancel") {
        Some("cancel")
    } else {
        None
    }
}

fn status(code: u16, fallback: StatusCode) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(fallback)
}

/// Runs `f` under the lock after the API-key check and fault injection; counts order actions
/// as they arrive (whatever their fate), as a venue's rate limit would.
pub(super) async fn guarded(
    req: HttpRequest,
    shared: Shared,
    f: impl FnOnce(&mut WireState) -> HttpResponse,
) -> HttpResponse {
    let (resp, fault) = {
        let Ok(mut st) = shared.lock() else {
            return err(500, 5000, "Internal Server Error");
        };
        if !st.authorized(&req) {
            return err(401, 4010, "unauthorized");
        }
        st.requested();
        if let Some(kind) = counted_kind(req.path()) {
            st.arrived(kind);
        }
        let fault = st.take_fault(req.path());
        match &fault {
            Some(Fault {
                code: Some(code),
                http_status,
                ..
            }) => {
                let s = http_status.unwrap_or(if *code == 4290 { 429 } else { 400 });
                return err(s, *code, "injected by the mock");
            }
            Some(Fault {
                http_status: Some(s),
                code: None,
                answer: None,
                ..
            }) => {
                return HttpResponse::build(status(*s, StatusCode::SERVICE_UNAVAILABLE))
                    .body("upstream connect error or disconnect/reset before headers");
            }
            _ => (f(&mut st), fault),
        }
    };
    let Some(fault) = fault else {
        return resp;
    };
    if let Some(ms) = fault.delay_ms {
        actix_rt::time::sleep(Duration::from_millis(ms)).await;
    }
    match fault.answer {
        None => resp,
        Some(BrokenAnswer::Garbage) => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"order\": {\"id\": 12, oops"),
        Some(BrokenAnswer::Empty) => HttpResponse::Ok().finish(),
        Some(BrokenAnswer::Html) => HttpResponse::build(status(
            fault.http_status.unwrap_or(404),
            StatusCode::NOT_FOUND,
        ))
        .content_type("text/html")
        .body("<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>"),
        Some(BrokenAnswer::Hang) => {
            actix_rt::time::sleep(Duration::from_secs(3_600)).await;
            resp
        }
        Some(BrokenAnswer::Reset) => {
            let cut = futures_util::stream::iter([
                Ok::<_, std::io::Error>(actix_web::web::Bytes::from_static(b"{\"id\":")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut by the mock",
                )),
            ]);
            HttpResponse::Ok()
                .content_type("application/json")
                .streaming(cut)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_paths() {
        assert_eq!(counted_kind("/order/submit"), Some("place"));
        assert_eq!(counted_kind("/order/cancel-all"), Some("cancel_all"));
        assert_eq!(counted_kind("/order/abc-1/cancel"), Some("cancel"));
        assert_eq!(counted_kind("/order/build"), None);
        assert_eq!(counted_kind("/accounts/open-orders"), None);
    }
}
