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
use std::sync::atomic::Ordering;
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

/// Counts a request as in the house for as long as it lives.
struct InHouse<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InHouse<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
    let _in_house = InHouse(&s.in_house);
    if before >= limits.max_concurrent + limits.max_waiting {
        let _ = tokio::time::timeout(limits.body_timeout, drain(req, limits.max_body_bytes)).await;
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("busy: {before} requests in progress; retry shortly"),
        ));
    }
    let (name, bytes) =
        tokio::time::timeout(limits.body_timeout, read_image(req, limits.max_body_bytes))
            .await
            .map_err(|_| {
                Refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} s",
                        limits.body_timeout.as_secs_f64()
                    ),
                )
            })??;
    let _turn = s
        .work
        .acquire()
        .await
        .map_err(|_| Refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    let service = Arc::clone(s);
    let work = tokio::task::spawn_blocking(move || {
        let decode_limits = DecodeLimits {
            max_width: limits.max_side,
            max_height: limits.max_side,
            max_alloc: limits.max_pixels.saturating_mul(4),
            max_pixels: limits.max_pixels,
        };
        let img = decode_rgb_bytes_with_limits(&bytes, &name, &decode_limits)
            .map_err(|e| refuse_image(&e))?;
        let (width, height) = (img.width(), img.height());
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

/// Reads a request's body up to `max` bytes and drops it, a piece at a time.
///
/// Why: an answer sent before the body is read closes the connection under a client that is still
/// sending it; the client's kernel then resets the connection, and the client sees a broken pipe
/// instead of the 503 and its Retry-After (it happened in the tests). Dropping each piece as it
/// comes keeps the memory flat however many requests are turned away.
async fn drain(req: Request, max: usize) {
    let mut body = req.into_body();
    let mut seen = 0;
    while seen <= max {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

/// The image bytes of a request, and a name for messages: the form's file name, or `body`.
async fn read_image(req: Request, max: usize) -> Result<(String, Vec<u8>), Refusal> {
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
        return Err(too_large());
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, max).await.map_err(|e| {
        if e.to_string().contains("length limit") {
            too_large()
        } else {
            Refusal(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
        }
    })?;
    if !is_form {
        if bytes.is_empty() {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "empty body: send an image (JPEG, PNG, WebP, BMP, GIF or TIFF)".into(),
            ));
        }
        return Ok(("body".into(), bytes.to_vec()));
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
