//! The server over real HTTP on loopback: good requests (raw body and multipart form), bad ones
//! (not an image, corrupt, empty, no file in the form, too large a body or image, wrong route or
//! method), and a bounded load test: many concurrent requests, every one answered, memory flat.

mod common;

use common::{shared, start, url};
use gc_serve::Limits;
use serde_json::Value;
use std::io::{Read, Write};

fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let response = match ureq::post(url)
        .set("Content-Type", content_type)
        .send_bytes(body)
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    (status, json)
}

fn form(field: &str, file_name: Option<&str>, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "gc-test-boundary-7d1f";
    let mut body = Vec::new();
    let disposition = match file_name {
        Some(f) => format!("form-data; name=\"{field}\"; filename=\"{f}\""),
        None => format!("form-data; name=\"{field}\""),
    };
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(bytes);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

#[test]
fn good_requests_get_faces_and_bad_ones_a_reason() {
    let server = start(Limits {
        max_body_bytes: 1 << 20,
        ..Limits::default()
    });
    let health: Value = ureq::get(&url(&server, "/healthz"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["model"], "built-in");

    let photo = std::fs::read(shared("photos/group-6-people.jpg")).unwrap();
    let (status, body) = post(&url(&server, "/v1/classify"), "image/jpeg", &photo);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(1280), Some(886))
    );
    let faces = body["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 6, "{body}");
    for f in faces {
        let p = &f["probabilities"];
        let sum = p["female"].as_f64().unwrap() + p["male"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-4, "{f}");
        assert!(["female", "male"].contains(&f["label"].as_str().unwrap()));
        assert_eq!(f["box"].as_array().unwrap().len(), 4);
    }

    // The same photo as the file of a form gives the same answer.
    let (ct, multipart) = form("image", Some("group.jpg"), &photo);
    let (status, from_form) = post(&url(&server, "/v1/classify"), &ct, &multipart);
    assert_eq!(status, 200, "{from_form}");
    assert_eq!(from_form, body);

    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "text",
            "text/plain".into(),
            b"hello, not an image".to_vec(),
            415,
            "not a JPEG",
        ),
        (
            "truncated",
            "image/jpeg".into(),
            photo[..3_000].to_vec(),
            400,
            "corrupt",
        ),
        ("empty", "image/jpeg".into(), Vec::new(), 400, "empty body"),
        {
            let (ct, b) = form("comment", None, b"just text");
            ("form without file", ct, b, 400, "no file")
        },
        {
            let (ct, b) = form("image", Some("x.jpg"), b"");
            ("form with empty file", ct, b, 400, "x.jpg: empty file")
        },
        (
            "broken form",
            "multipart/form-data; boundary=zzz".into(),
            b"--zzz\r\nnonsense".to_vec(),
            400,
            "malformed multipart",
        ),
    ];
    for (what, ct, bytes, want_status, want_reason) in cases {
        let (status, body) = post(&url(&server, "/v1/classify"), &ct, &bytes);
        assert_eq!(status, want_status, "{what}: {body}");
        assert!(error_of(&body).contains(want_reason), "{what}: {body}");
    }

    // A body over the limit with its Content-Length is refused from the header.
    let sized = raw_sized_post(&server.addr, (1 << 20) + 1);
    assert!(sized.starts_with("HTTP/1.1 413"), "{sized}");
    assert!(sized.contains("larger than the limit"), "{sized}");

    // A body over the limit without a Content-Length (chunked) is cut off while it is read.
    let chunked = raw_chunked_post(&server.addr, 3 << 20);
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");

    // A client that sends its whole body before it reads (as ureq, Python's http.client and
    // browsers do) gets the 413 too, sized or chunked, however far past the limit: the server
    // reads and drops the rest. It answered and closed at once, and such clients saw a broken
    // pipe instead of the reason.
    // Streamed, not held: the memory test beside this one measures the whole process.
    let big = || std::io::Read::take(std::io::repeat(0), 32 << 20);
    let sized = ureq::post(&url(&server, "/v1/classify"))
        .set("Content-Length", &(32 << 20).to_string())
        .send(big());
    let chunked = ureq::post(&url(&server, "/v1/classify")).send(big());
    for (what, answer) in [("sized", sized), ("chunked", chunked)] {
        match answer {
            Err(ureq::Error::Status(413, r)) => {
                assert!(r.into_string().unwrap().contains("larger than the limit"))
            }
            other => panic!("{what} 32 MiB: {other:?}"),
        }
    }

    // The media type is case-insensitive: a form whose Content-Type is spelt in capitals is
    // still read as a form.
    let (content_type, body) = form("photo", Some("group.jpg"), &photo);
    let shouted = content_type.replace("multipart/form-data", "Multipart/Form-Data");
    let (status, v) = post(&url(&server, "/v1/classify"), &shouted, &body);
    assert_eq!(status, 200, "{v}");

    // Two files in one form: refused, rather than the second dropped without a word.
    let (ct, mut two) = form("image", Some("a.jpg"), &photo);
    let (_, second) = form("other", Some("b.jpg"), &photo);
    two.truncate(two.len() - "--gc-test-boundary-7d1f--\r\n".len());
    two.extend_from_slice(&second);
    let (status, body) = post(&url(&server, "/v1/classify"), &ct, &two);
    assert_eq!(status, 400, "{body}");
    assert!(
        error_of(&body).contains("more than one file (a.jpg, b.jpg)"),
        "{body}"
    );

    // Unknown paths and methods get a reason too (their bodies were empty).
    let json_error = |r: Result<ureq::Response, ureq::Error>, want: u16| match r {
        Err(ureq::Error::Status(status, r)) => {
            assert_eq!(status, want);
            let allow = r.header("Allow").map(str::to_string);
            let v: Value = r.into_json().unwrap();
            (error_of(&v).to_string(), allow)
        }
        other => panic!("expected {want}: {other:?}"),
    };
    let (missing, _) = json_error(ureq::get(&url(&server, "/nope")).call(), 404);
    assert!(
        missing.contains("/nope") && missing.contains("POST /v1/classify"),
        "{missing}"
    );
    let (wrong, allow) = json_error(ureq::get(&url(&server, "/v1/classify")).call(), 405);
    assert!(
        wrong.contains("GET is not served at /v1/classify"),
        "{wrong}"
    );
    assert_eq!(allow.as_deref(), Some("POST"));

    // After all that, the server still answers.
    let (status, _) = post(&url(&server, "/v1/classify"), "image/jpeg", &photo);
    assert_eq!(status, 200);
    server.stop().unwrap();
}

/// POSTs an image to `/v1/classify` over a raw socket, with the body framed by `framing` (a
/// header) and written by `send`, and returns what the server answered. Raw, because the server
/// may answer and close before the body is all sent: `send` stops at the first failed write, and
/// the answer is still read.
fn raw_post(
    addr: &std::net::SocketAddr,
    framing: &str,
    send: impl FnOnce(&mut std::net::TcpStream),
) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n{framing}\r\n\r\n"
    )
    .unwrap();
    send(&mut s);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// POSTs `size` bytes with their Content-Length.
fn raw_sized_post(addr: &std::net::SocketAddr, size: usize) -> String {
    raw_post(addr, &format!("Content-Length: {size}"), |s| {
        let _ = s.write_all(&vec![0u8; size]);
    })
}

/// POSTs `size` bytes in chunks (no Content-Length).
fn raw_chunked_post(addr: &std::net::SocketAddr, size: usize) -> String {
    raw_post(addr, "Transfer-Encoding: chunked", |s| {
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < size {
            if write!(s, "{:x}\r\n", chunk.len()).is_err()
                || s.write_all(&chunk).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
            sent += chunk.len();
        }
        let _ = s.write_all(b"0\r\n\r\n");
    })
}

#[test]
fn images_too_large_are_refused_before_decoding() {
    let server = start(Limits {
        max_side: 1000,
        ..Limits::default()
    });
    let photo = std::fs::read(shared("photos/group-6-people.jpg")).unwrap();
    let (status, body) = post(&url(&server, "/v1/classify"), "image/jpeg", &photo);
    assert_eq!(status, 413, "{body}");
    assert!(error_of(&body).contains("1280x886"), "{body}");

    // Within the side limit but over the pixel count: refused from the header too (the
    // message is the declared size's), not after decoding 1.1 million pixels.
    let server = start(Limits {
        max_pixels: 1_000_000,
        ..Limits::default()
    });
    let (status, body) = post(&url(&server, "/v1/classify"), "image/jpeg", &photo);
    assert_eq!(status, 413, "{body}");
    let error = error_of(&body);
    assert!(
        error.contains("declared size 1280x886") && error.contains("1000000 pixels"),
        "{body}"
    );
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// One answer under load: status, Retry-After, body.
type Answer = (u16, Option<String>, String);

/// `clients` threads each POST `photo` `each` times; returns every answer.
fn wave(addr: &str, photo: &[u8], clients: usize, each: usize) -> Vec<Answer> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    (0..each)
                        .map(|_| {
                            let r = match ureq::post(addr)
                                .set("Content-Type", "image/jpeg")
                                .send_bytes(photo)
                            {
                                Ok(r) => r,
                                Err(ureq::Error::Status(_, r)) => r,
                                Err(e) => panic!("transport error under load: {e}"),
                            };
                            let retry = r.header("Retry-After").map(str::to_string);
                            (r.status(), retry, r.into_string().unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn statuses(answers: &[Answer]) -> Vec<u16> {
    answers.iter().map(|a| a.0).collect()
}

#[test]
fn many_concurrent_requests_are_all_answered_with_flat_memory() {
    let server = start(Limits {
        max_concurrent: 2,
        max_waiting: 64,
        ..Limits::default()
    });
    let addr = url(&server, "/v1/classify");
    let photo = std::fs::read(shared("photos/ultraface-imgs-2.jpg")).unwrap();
    // Warm-up wave: allocator arenas, thread pools and model buffers reach their working size.
    let warm = statuses(&wave(&addr, &photo, 24, 2));
    assert!(warm.iter().all(|&s| s == 200), "{warm:?}");
    let after_warm = rss_mib();
    let mut answered = 0;
    for _ in 0..3 {
        let got = statuses(&wave(&addr, &photo, 24, 3));
        assert!(got.iter().all(|&s| s == 200), "{got:?}");
        answered += got.len();
        println!("after {answered} requests: RSS {:.0} MiB", rss_mib());
    }
    let after = rss_mib();
    println!(
        "{answered} requests from 24 clients: RSS {after_warm:.0} MiB after warm-up, {after:.0} MiB after"
    );
    assert_eq!(answered, 216);
    // Each request holds at most one 1024x484 photo (1.5 MB decoded): a leak of one per request
    // would be over 300 MiB here.
    assert!(
        after - after_warm < 24.0,
        "memory grew by {:.0} MiB",
        after - after_warm
    );
}

/// Uploads that start and then stall get 408 once the body timeout has passed, and free their
/// places: as many as the house holds used to keep every later request at 503 for as long as
/// they stayed open.
#[test]
fn stalled_uploads_time_out_and_free_their_places() {
    let server = start(Limits {
        max_concurrent: 1,
        max_waiting: 1,
        body_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    });
    let stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            write!(
                s,
                "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{}",
                "x".repeat(20)
            )
            .unwrap();
            s
        })
        .collect();
    for mut s in stalled {
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    }
    let photo = std::fs::read(shared("photos/group-6-people.jpg")).unwrap();
    let (status, body) = post(&url(&server, "/v1/classify"), "image/jpeg", &photo);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn past_the_waiting_room_requests_get_503_with_retry_after() {
    let server = start(Limits {
        max_concurrent: 1,
        max_waiting: 1,
        ..Limits::default()
    });
    let addr = url(&server, "/v1/classify");
    let photo = std::fs::read(shared("photos/group-6-people.jpg")).unwrap();
    let answers = wave(&addr, &photo, 12, 1);
    let got = statuses(&answers);
    assert!(got.iter().all(|&s| s == 200 || s == 503), "{got:?}");
    assert!(got.contains(&200), "{got:?}");
    assert!(got.contains(&503), "{got:?}");
    for (status, retry_after, body) in answers.iter().filter(|a| a.0 == 503) {
        assert_eq!(retry_after.as_deref(), Some("1"), "{status}");
        assert!(body.contains("busy"), "{body}");
    }
}

/// A model that takes its time and records how many runs overlapped.
#[derive(Default)]
struct Slow {
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    runs: std::sync::atomic::AtomicUsize,
}

struct SlowModel(std::sync::Arc<Slow>, Vec<gc_core::ClassLabel>);

impl gc_core::Classifier for SlowModel {
    fn name(&self) -> &str {
        "slow"
    }

    fn labels(&self) -> &[gc_core::ClassLabel] {
        &self.1
    }

    fn classify(
        &self,
        images: &[gc_core::RgbView<'_>],
    ) -> Result<Vec<Vec<f32>>, gc_core::ModelError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.0.running.fetch_add(1, SeqCst) + 1;
        self.0.most.fetch_max(now, SeqCst);
        self.0.runs.fetch_add(1, SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        self.0.running.fetch_sub(1, SeqCst);
        Ok(images.iter().map(|_| vec![0.5, 0.5]).collect())
    }
}

/// Clients that send a photo and leave before the answer: a classification keeps the place it
/// took until it ends, and the requests still waiting for a place when their client leaves are
/// never run. The place used to be given back when the client left, the requests waiting took it
/// in turn, and every abandoned upload was classified after its client had gone.
#[test]
fn clients_that_leave_free_no_place_before_their_work_is_done() {
    use std::sync::atomic::Ordering::SeqCst;
    let slow = std::sync::Arc::new(Slow::default());
    let labels = gc_core::map_labels(&["female".into(), "male".into()], "slow").unwrap();
    let service = gc_serve::Service::new(
        Box::new(SlowModel(std::sync::Arc::clone(&slow), labels)),
        None,
        gc_classify::photos::DetectMode::Never,
        Limits {
            max_concurrent: 1,
            max_waiting: 8,
            ..Limits::default()
        },
    );
    let server = gc_serve::Running::start("127.0.0.1:0", service).unwrap();
    let photo = std::fs::read(shared("photos/ultraface-imgs-13.jpg")).unwrap();
    // The first client leaves once its photo is being classified; the others, long before that
    // classification's 1.5 s are over.
    for i in 0..4 {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        write!(
            s,
            "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            photo.len()
        )
        .unwrap();
        s.write_all(&photo).unwrap();
        let waited = std::time::Instant::now();
        while i == 0 && slow.runs.load(SeqCst) == 0 {
            assert!(
                waited.elapsed().as_secs() < 30,
                "the first photo never reached the model"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(s);
    }
    let (status, body) = post(&url(&server, "/v1/classify"), "image/jpeg", &photo);
    assert_eq!(status, 200, "{body}");
    assert_eq!(slow.most.load(SeqCst), 1, "classifications overlapped");
    // The first and the last; the three that waited behind the first left before their turn.
    assert_eq!(slow.runs.load(SeqCst), 2);
    server.stop().unwrap();
}

/// A client that holds a connection open with its headers unfinished cannot keep the server from
/// stopping: a stop waits for the requests in flight for at most the body timeout plus 10 s. It
/// used to wait for as long as the client liked.
#[test]
fn a_half_open_connection_does_not_keep_the_server_up() {
    let server = start(Limits {
        body_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    });
    let mut holder = std::net::TcpStream::connect(server.addr).unwrap();
    write!(holder, "POST /v1/classify HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let start = std::time::Instant::now();
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(server.stop()));
    let result = stopped
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the server did not stop within 30 s");
    result.unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_secs(10));
    drop(holder);
}
