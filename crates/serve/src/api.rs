//! The JSON API: `/v1/classify` and `/healthz`.

use crate::Service;
use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gc_classify::photos::classify_image;
use gc_pipeline::decode::{DecodeError, DecodeLimits, decode_rgb_bytes_with_limits};
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// An answer that is not a 200: its status and the reason, sent as `{"error": reason}`.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // A client that sent too much is not asked to send more on this connection; what is
        // left of a body the drain gave up on would otherwise be read as the next request.
        if self.0 == StatusCode::PAYLOAD_TOO_LARGE {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

pub async fn healthz(State(s): State<Arc<Service>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "model": s.model.name(),
        "detector": s.detector.as_ref().map(|d| format!("{:?}", d.kind())),
    }))
}

/// Counts a request as in the house for as long as it, or the classification it started, lives.
struct InHouse(Arc<Service>);

impl Drop for InHouse {
    fn drop(&mut self) {
        self.0.in_house.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Raised when a request's handler is dropped, which is how a client that leaves shows up: the
/// classification it started then skips what is left of its work.
struct LeftWhenDropped(Arc<AtomicBool>);

impl Drop for LeftWhenDropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub async fn classify(State(s): State<Arc<Service>>, req: Request) -> Response {
    let start = Instant::now();
    let result = classify_request(&s, req).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(Refusal(status, reason)) => {
            tracing::info!("POST /v1/classify: {status}: {reason}");
            *status
        }
    };
    tracing::debug!(
        "POST /v1/classify: {status} in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    match result {
        Ok(v) => Json(v).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn classify_request(s: &Arc<Service>, req: Request) -> Result<Value, Refusal> {
    let limits = s.limits;
    let before = s.in_house.fetch_add(1, Ordering::SeqCst);
    let in_house = InHouse(Arc::clone(s));
    if before >= limits.max_concurrent + limits.max_waiting {
        // Lingering takes no place in the house: refused requests must not turn others away.
        drop(in_house);
        linger(req, limits).await;
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("busy: {before} requests in progress; retry shortly"),
        ));
    }
    let read = tokio::time::timeout(limits.body_timeout, read_image(req, limits.max_body_bytes))
        .await
        .map_err(|_| {
            Refusal(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    limits.body_timeout.as_secs_f64()
                ),
            )
        })?;
    let (name, bytes) = match read {
        Ok(image) => image,
        Err((refusal, unread)) => {
            drop(in_house);
            if let Some(req) = unread {
                linger(req, limits).await;
            }
            return Err(refusal);
        }
    };
    let turn = Arc::clone(&s.work)
        .acquire_owned()
        .await
        .map_err(|_| Refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    let left = Arc::new(AtomicBool::new(false));
    let _left = LeftWhenDropped(Arc::clone(&left));
    let service = Arc::clone(s);
    let gone = || {
        Refusal(
            StatusCode::REQUEST_TIMEOUT,
            "the client left before the answer".into(),
        )
    };
    // The turn and the place in the house go with the work, not with the handler: a client that
    // leaves drops the handler, and the requests waiting behind it would otherwise take the turn
    // and queue their work too, so that every abandoned upload was classified, after its client
    // had gone, with its body in memory (fifteen cost 7 s of CPU).
    let work = tokio::task::spawn_blocking(move || {
        let _held = (turn, in_house);
        if left.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let decode_limits = DecodeLimits {
            max_width: limits.max_side,
            max_height: limits.max_side,
            max_alloc: limits.max_pixels.saturating_mul(4),
            max_pixels: limits.max_pixels,
        };
        let img = decode_rgb_bytes_with_limits(&bytes, &name, &decode_limits)
            .map_err(|e| refuse_image(&e))?;
        let (width, height) = (img.width(), img.height());
        if left.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let verdict = classify_image(
            service.model.as_ref(),
            service.detector.as_ref(),
            service.detect,
            img,
        )
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("{name}: {e}")))?;
        let mut out = gc_classify::json::verdict(&verdict);
        out.insert("width".into(), json!(width));
        out.insert("height".into(), json!(height));
        Ok(Value::Object(out))
    });
    match work.await {
        Ok(result) => result,
        // A panic in a model is a bug of ours, but it must cost one request, not the server.
        Err(e) => {
            tracing::error!("classification task failed: {e}");
            Err(Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while classifying".into(),
            ))
        }
    }
}

/// Reads what is left of a refused request's body and drops it, a piece at a time, for at most
/// the body timeout (what nginx calls a lingering close).
///
/// Why: an answer sent before the body is read closes the connection under a client that is still
/// sending it; the client's kernel then resets the connection, and a client that sends its whole
/// body before reading (Python's http.client, browsers' fetch) sees a broken pipe instead of the
/// 503 or 413 and its reason. Dropping each piece as it comes keeps the memory flat however many
/// requests are turned away, and the time bound keeps a client that never stops from holding its
/// place.
///
/// A client that asked to be told before it sends the body (`Expect: 100-continue`) is not: it
/// waits for the answer, and reading the body would make the server invite the whole upload.
async fn linger(req: Request, limits: crate::Limits) {
    if req.headers().contains_key(header::EXPECT) {
        return;
    }
    let mut body = req.into_body();
    let drain = async {
        while let Some(Ok(_)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
        }
    };
    let _ = tokio::time::timeout(limits.body_timeout, drain).await;
}

/// A body's bytes, up to `max`; past it `None`, with the body left unread from there.
async fn read_up_to(body: &mut Body, max: usize) -> Result<Option<Vec<u8>>, Refusal> {
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
        let frame = frame
            .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("reading the body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > max {
                return Ok(None);
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(Some(bytes))
}

/// Why a request's image could not be read, and the body left unread when it is refused for its
/// size (to be drained, see [`linger`]).
type Unread = (Refusal, Option<Request>);

/// The image bytes of a request, and a name for messages: the form's file name, or `body`.
async fn read_image(req: Request, max: usize) -> Result<(String, Vec<u8>), Unread> {
    let too_large = || {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than the limit of {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err((too_large(), Some(req)));
    }
    // Media types are case-insensitive (RFC 9110 8.3.1).
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.get(..19)
                .is_some_and(|t| t.eq_ignore_ascii_case("multipart/form-data"))
        });
    let (parts, mut body) = req.into_parts();
    let Some(bytes) = read_up_to(&mut body, max).await.map_err(|r| (r, None))? else {
        // Reading has begun, so a client that expected to be told first was invited already.
        let mut parts = parts;
        parts.headers.remove(header::EXPECT);
        return Err((too_large(), Some(Request::from_parts(parts, body))));
    };
    let refuse = |r| (r, None);
    read_form(parts, bytes, is_form).await.map_err(refuse)
}

/// The image of a body read whole: the body itself, or the file of a multipart form.
async fn read_form(
    parts: axum::http::request::Parts,
    bytes: Vec<u8>,
    is_form: bool,
) -> Result<(String, Vec<u8>), Refusal> {
    if !is_form {
        if bytes.is_empty() {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "empty body: send an image (JPEG, PNG, WebP, BMP, GIF or TIFF)".into(),
            ));
        }
        return Ok(("body".into(), bytes));
    }
    let bad = |e: &dyn std::fmt::Display| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("malformed multipart form: {e}"),
        )
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(&e.body_text()))?;
    let mut image = None;
    while let Some(field) = form.next_field().await.map_err(|e| bad(&e.body_text()))? {
        let file = field.file_name().map(str::to_string);
        if file.is_none() && field.name() != Some("image") {
            continue;
        }
        let name = file.unwrap_or_else(|| "image".into());
        // The answer is one image's: a second file would be dropped without a word.
        if let Some((first, _)) = &image {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!(
                    "the form holds more than one file ({first}, {name}): send one image a request"
                ),
            ));
        }
        let data = field.bytes().await.map_err(|e| bad(&e.body_text()))?;
        if data.is_empty() {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!("{name}: empty file"),
            ));
        }
        image = Some((name, data.to_vec()));
    }
    image.ok_or_else(|| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "the form has no file: send the image as a file (any field name), or as a field named `image`".into(),
        )
    })
}

/// Every answer that is not a 200 carries `{"error": reason}`, unknown paths and methods too.
pub async fn not_found(req: Request) -> Response {
    Refusal(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {}; the API is POST /v1/classify and GET /healthz",
            req.uri().path()
        ),
    )
    .into_response()
}

/// axum adds the route's `Allow` header to this answer.
pub async fn method_not_allowed(req: Request) -> Response {
    Refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not served at {}", req.method(), req.uri().path()),
    )
    .into_response()
}

/// A 4xx for an image we cannot take; the message names the file (DecodeError's always does).
fn refuse_image(e: &DecodeError) -> Refusal {
    let status = match e {
        DecodeError::TooLarge { .. } | DecodeError::FileTooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        DecodeError::UnknownFormat { .. } | DecodeError::Unsupported { .. } => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    Refusal(status, e.to_string())
}
