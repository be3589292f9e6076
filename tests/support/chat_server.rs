//! A chat-completions server on loopback for the served-model tests and benchmarks: real
//! HTTP/1.1 (keep-alive, Content-Length bodies), the OpenAI request and reply shapes, and a
//! script that decides each reply, so that tests can make it answer from the request, return
//! 429 with `Retry-After`, return 5xx, stall past a timeout, send malformed JSON or drop the
//! connection.
//!
//! Every request is logged with what it carried: the model name, the `Authorization` header,
//! the text part, and each image decoded to pixels (digested), in order. A counter of requests
//! in flight records the highest concurrency the client ever reached.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub authorization: Option<String>,
    pub model: String,
    /// The user turn's text part.
    pub text: String,
    /// Each image decoded to 8-bit RGB and digested (`sha256(w, h, rgb bytes)`), in order.
    pub images: Vec<String>,
    /// The whole request body.
    pub body: Value,
    /// How many times this exact body has arrived (1 for the first).
    pub attempt: usize,
}

impl Seen {
    /// The question's first line (the question itself).
    pub fn question(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with a chat completion whose content is this text.
    Answer(String),
    /// Any status with a JSON error body; `retry_after` in seconds.
    Status {
        code: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Wait this long, then answer as [`answer_for`] would (the client should have given
    /// up by then).
    Stall(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// Close the connection without a reply.
    Drop,
}

pub type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

struct State {
    script: Box<Script>,
    /// Added to every reply (a model's time), before it is written.
    latency: Box<dyn Fn(&Seen) -> Duration + Send + Sync>,
    log: Mutex<Vec<Seen>>,
    attempts: Mutex<HashMap<[u8; 32], usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    stop: AtomicBool,
    /// Decode each image to digest its pixels (off: digest the data URL, for benchmarks).
    decode_images: bool,
}

pub struct ChatServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl ChatServer {
    /// A server whose replies come from `script`, each after `latency`.
    pub fn start(
        script: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        latency: impl Fn(&Seen) -> Duration + Send + Sync + 'static,
    ) -> ChatServer {
        ChatServer::start_with(script, latency, true)
    }

    /// [`ChatServer::start`]; `decode_images` off digests each image's data URL instead of
    /// its pixels, so that a benchmark times the client rather than the server's decoder.
    pub fn start_with(
        script: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        latency: impl Fn(&Seen) -> Duration + Send + Sync + 'static,
        decode_images: bool,
    ) -> ChatServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(State {
            script: Box::new(script),
            latency: Box::new(latency),
            log: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            decode_images,
        });
        let st = state.clone();
        let accept = std::thread::spawn(move || {
            while !st.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || serve(stream, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        ChatServer {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// A server that answers every request from its content, at once.
    pub fn answering() -> ChatServer {
        ChatServer::start(|s| Reply::Answer(answer_for(s)), |_| Duration::ZERO)
    }

    /// The API base URL (`http://127.0.0.1:PORT/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }

    /// The most requests that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// The answer a cooperative model gives, from the instruction line medvqa writes: `yes` to
/// a closed question, `A` to a single choice, `A, B` to a multi choice, one box to a
/// grounding question, `two` otherwise.
pub fn answer_for(s: &Seen) -> String {
    let last = s.text.lines().last().unwrap_or("");
    if last.contains("yes or no") {
        "yes".into()
    } else if last.contains("letters of all correct options") {
        "A, B".into()
    } else if last.contains("option's letter") {
        "A".into()
    } else if last.contains("box") {
        "[0.1, 0.2, 0.5, 0.6]".into()
    } else {
        "two".into()
    }
}

/// The digest the log gives an image: `sha256(width, height, RGB bytes)`.
pub fn pixel_digest(img: &image::DynamicImage) -> String {
    let rgb = img.to_rgb8();
    let mut h = sha2::Sha256::new();
    h.update(rgb.width().to_le_bytes());
    h.update(rgb.height().to_le_bytes());
    h.update(rgb.as_raw());
    hex::encode(h.finalize())
}

fn serve(stream: TcpStream, st: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    // As serving engines do (uvicorn, vLLM): without it, Nagle's algorithm and the client's
    // delayed ACK add about 40 ms to a reply.
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut out = write_half;
    let mut reader = BufReader::new(stream);
    while let Some(body) = read_request(&mut reader) {
        let n = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(n, Ordering::SeqCst);
        let keep = handle(&body, st, &mut out);
        st.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep {
            let _ = out.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// One request's headers and body; `None` at the end of the connection.
struct Raw {
    authorization: Option<String>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Raw> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut length = 0usize;
    let mut authorization = None;
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().ok()?,
                "authorization" => authorization = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(Raw {
        authorization,
        body,
    })
}

/// Answers one request; whether the connection stays open.
fn handle(raw: &Raw, st: &State, out: &mut TcpStream) -> bool {
    let Some(seen) = parse(raw, st) else {
        return respond(
            out,
            400,
            &json!({"error": {"message": "not a chat request"}}).to_string(),
            None,
        );
    };
    st.log.lock().unwrap().push(seen.clone());
    let reply = (st.script)(&seen);
    std::thread::sleep((st.latency)(&seen));
    match reply {
        Reply::Answer(text) => respond(out, 200, &completion(&text), None),
        Reply::Status {
            code,
            message,
            retry_after,
        } => respond(
            out,
            code,
            &json!({"error": {"message": message}}).to_string(),
            retry_after,
        ),
        Reply::Stall(d) => {
            // Until the client gives up (closes the connection) or `d` has passed; a
            // request the client abandoned no longer counts as in flight.
            let end = std::time::Instant::now() + d;
            let _ = out.set_nonblocking(true);
            let mut byte = [0u8; 1];
            while std::time::Instant::now() < end {
                if let Ok(0) = out.peek(&mut byte) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = out.set_nonblocking(false);
            respond(out, 200, &completion(&answer_for(&seen)), None);
            false
        }
        Reply::Malformed => respond(out, 200, "{\"choices\": [{\"message\": ", None),
        Reply::Drop => false,
    }
}

fn completion(text: &str) -> String {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103},
    })
    .to_string()
}

fn respond(out: &mut TcpStream, code: u16, body: &str, retry_after: Option<u64>) -> bool {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(s) = retry_after {
        head.push_str(&format!("Retry-After: {s}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    out.write_all(head.as_bytes()).is_ok()
}

fn parse(raw: &Raw, st: &State) -> Option<Seen> {
    let body: Value = serde_json::from_slice(&raw.body).ok()?;
    let digest: [u8; 32] = sha2::Sha256::digest(&raw.body).into();
    let attempt = {
        let mut a = st.attempts.lock().unwrap();
        let n = a.entry(digest).or_default();
        *n += 1;
        *n
    };
    let user = body
        .get("messages")?
        .as_array()?
        .iter()
        .rfind(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    let mut text = String::new();
    let mut images = Vec::new();
    // A plain-text turn (an LLM judge's) has a string for its content.
    let content = match user.get("content")? {
        Value::String(s) => {
            text = s.clone();
            Vec::new()
        }
        other => other.as_array()?.clone(),
    };
    for part in &content {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => text = part.get("text")?.as_str()?.to_string(),
            Some("image_url") => {
                let url = part.pointer("/image_url/url")?.as_str()?;
                if !st.decode_images {
                    images.push(hex::encode(sha2::Sha256::digest(url.as_bytes())));
                    continue;
                }
                let b64 = url.split_once(";base64,")?.1;
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                let img = image::load_from_memory(&bytes).ok()?;
                images.push(pixel_digest(&img));
            }
            _ => return None,
        }
    }
    Some(Seen {
        authorization: raw.authorization.clone(),
        model: body.get("model")?.as_str()?.to_string(),
        text,
        images,
        body,
        attempt,
    })
}
