//! The HTTP side of a served model: one pooled client, one chat-completions request with
//! retries, and the reply read into an answer.
//!
//! `ureq` (blocking, rustls for TLS) rather than reqwest + tokio: the engine already runs each
//! request on its own worker thread with a hard limit of `max_concurrency` threads, so an
//! async runtime would add a second scheduler and a larger build for no gain at the
//! concurrencies a serving engine takes (tens to a few hundred requests in flight).
//!
//! Retries: 429, any 5xx, a timeout, a refused or dropped connection, or a malformed HTTP
//! exchange are retried up to `max_retries` times, waiting an exponential backoff with
//! jitter, or the server's `Retry-After` when it asks for longer. Any other 4xx fails the
//! sample at once with the server's message. A 2xx whose body is not a chat completion fails
//! the sample too: retrying a server that answers nonsense would only repeat it.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Timeouts and retries of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The whole exchange: connecting, sending, waiting and reading the reply.
    pub timeout: Duration,
    /// Attempts after the first.
    pub max_retries: u32,
    /// The first backoff; each retry doubles it, up to `max_backoff`.
    pub base: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(120),
            max_retries: 6,
            base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

/// A chat completion's answer text and token counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// What one sample's request came to.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The answer, or why there is none (the key cut out).
    pub result: Result<Reply, String>,
    /// Requests sent, the first included.
    pub attempts: usize,
    /// How long the last request took.
    pub last_latency: Duration,
}

/// Whether a failed attempt is worth repeating, and how soon the server asked for it.
enum Failed {
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Final(String),
}

pub(super) struct Client {
    agent: ureq::Agent,
    endpoint: String,
    key: Option<String>,
    policy: RetryPolicy,
}

impl Client {
    pub fn new(endpoint: String, key: Option<String>, policy: RetryPolicy) -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(policy.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("medvqa/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: config.into(),
            endpoint,
            key,
            policy,
        }
    }

    /// Sends `body` until it is answered, fails for good, or runs out of retries.
    pub fn send(&self, body: &str) -> Outcome {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let t = Instant::now();
            let result = self.once(body);
            let last_latency = t.elapsed();
            let (reason, after) = match result {
                Ok(reply) => {
                    return Outcome {
                        result: Ok(reply),
                        attempts,
                        last_latency,
                    };
                }
                Err(Failed::Final(reason)) => {
                    return Outcome {
                        result: Err(self.redact(reason)),
                        attempts,
                        last_latency,
                    };
                }
                Err(Failed::Retry { reason, after }) => (reason, after),
            };
            let retries = attempts - 1;
            if retries >= self.policy.max_retries as usize {
                let reason = if retries == 0 {
                    reason
                } else {
                    format!("{reason} (gave up after {attempts} attempts)")
                };
                return Outcome {
                    result: Err(self.redact(reason)),
                    attempts,
                    last_latency,
                };
            }
            std::thread::sleep(self.wait(retries as u32, after, body));
        }
    }

    /// The wait before retry number `retry + 1`: the exponential backoff with jitter (half to
    /// all of it, from a hash of the request, so concurrent retries spread out), or the
    /// server's `Retry-After` when that is longer.
    fn wait(&self, retry: u32, after: Option<Duration>, body: &str) -> Duration {
        let p = &self.policy;
        let full = p
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(p.max_backoff);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (body.len(), &body[..body.len().min(256)], retry).hash(&mut h);
        let jitter = 0.5 + 0.5 * (h.finish() % 1024) as f64 / 1023.0;
        let backoff = full.mul_f64(jitter);
        match after {
            Some(a) => backoff.max(a.min(p.max_retry_after)),
            None => backoff,
        }
    }

    fn once(&self, body: &str) -> Result<Reply, Failed> {
        let mut req = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json");
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = req.send(body).map_err(transport)?;
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(transport)?;
        match status {
            200..=299 => parse_reply(&text).map_err(Failed::Final),
            429 | 500..=599 => Err(Failed::Retry {
                reason: format!("the server answered HTTP {status}: {}", message_of(&text)),
                after,
            }),
            _ => Err(Failed::Final(format!(
                "the server refused the request with HTTP {status}: {}",
                message_of(&text)
            ))),
        }
    }

    /// `text` with the key cut out, should a server or a library ever echo it.
    fn redact(&self, text: String) -> String {
        match &self.key {
            Some(k) if !k.is_empty() => text.replace(k.as_str(), "[API key]"),
            _ => text,
        }
    }
}

/// A transport failure: timeouts, refused or dropped connections and malformed exchanges
/// are retried; a URL that cannot work is not.
fn transport(e: ureq::Error) -> Failed {
    use ureq::Error as E;
    match e {
        E::Timeout(t) => Failed::Retry {
            reason: format!("the request timed out ({t})"),
            after: None,
        },
        E::Io(_) | E::ConnectionFailed | E::HostNotFound | E::Protocol(_) => Failed::Retry {
            reason: format!("the connection failed: {e}"),
            after: None,
        },
        other => Failed::Final(format!("the request could not be made: {other}")),
    }
}

/// The server's own words from an error body: OpenAI's `error.message`, vLLM's `message`,
/// FastAPI's `detail`, else the body itself (cut to 500 characters).
fn message_of(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let pick = |v: &Value| -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        v.pointer("/error/message")
            .and_then(pick)
            .or_else(|| v.get("error").and_then(pick))
            .or_else(|| v.get("message").and_then(pick))
            .or_else(|| v.get("detail").and_then(pick))
    });
    let text = from_json.unwrap_or_else(|| body.trim().to_string());
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut cut: String = text.chars().take(500).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// A chat-completions reply: `choices[0].message.content` (a string, or a list of text
/// parts) and the usage counts.
pub(super) fn parse_reply(body: &str) -> Result<Reply, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "the server's reply is not JSON ({e}): {}",
            body.chars().take(200).collect::<String>()
        )
    })?;
    let choice = v.pointer("/choices/0").ok_or_else(|| {
        "the server's reply has no choices[0] (not a chat completion)".to_string()
    })?;
    let message = choice
        .get("message")
        .ok_or_else(|| "the server's reply has no choices[0].message".to_string())?;
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => {
            let why = match (message.get("refusal"), choice.get("finish_reason")) {
                (Some(Value::String(r)), _) => format!("the model refused: {r}"),
                (_, Some(Value::String(f))) => format!("finish_reason {f}"),
                _ => "no finish_reason".into(),
            };
            return Err(format!("the server's reply has no answer text ({why})"));
        }
    };
    let count = |k: &str| v.pointer(&format!("/usage/{k}")).and_then(Value::as_u64);
    Ok(Reply {
        text,
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    })
}

/// The scheme and host of `url` (`("http", "10.0.0.5")`), without a URL parser: enough to
/// tell TLS from plain text and a loopback host from another.
pub(super) fn scheme_and_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some((scheme, host))
}

/// `localhost`, 127.0.0.0/8 or ::1.
pub(super) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_from_strings_and_parts() {
        let r = parse_reply(
            r#"{"choices":[{"message":{"content":"B"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!(r.text, "B");
        assert_eq!((r.prompt_tokens, r.completion_tokens), (Some(12), Some(1)));
        let r = parse_reply(
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"ye"},{"type":"text","text":"s"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(r.text, "yes");
        assert_eq!(r.prompt_tokens, None);
    }

    #[test]
    fn replies_without_text_say_why() {
        let e =
            parse_reply(r#"{"choices":[{"message":{"content":null},"finish_reason":"length"}]}"#)
                .unwrap_err();
        assert!(e.contains("finish_reason length"), "{e}");
        let e = parse_reply(r#"{"choices":[{"message":{"refusal":"no images of people"}}]}"#)
            .unwrap_err();
        assert!(e.contains("refused: no images of people"), "{e}");
        assert!(
            parse_reply("{\"choices\": [")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(parse_reply("{}").unwrap_err().contains("choices[0]"));
    }

    #[test]
    fn error_bodies_give_the_servers_words() {
        assert_eq!(
            message_of(
                r#"{"error":{"message":"At most 2 image(s) may be provided in one request."}}"#
            ),
            "At most 2 image(s) may be provided in one request."
        );
        assert_eq!(message_of(r#"{"object":"error","message":"bad"}"#), "bad");
        assert_eq!(message_of(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(message_of("  "), "(empty body)");
        assert_eq!(message_of(&"x".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn hosts_and_loopback() {
        assert_eq!(
            scheme_and_host("http://localhost:8000/v1"),
            Some(("http", "localhost"))
        );
        assert_eq!(
            scheme_and_host("https://user:pw@api.example.com/v1"),
            Some(("https", "api.example.com"))
        );
        assert_eq!(scheme_and_host("http://[::1]:80/v1"), Some(("http", "::1")));
        assert_eq!(scheme_and_host("localhost:8000"), None);
        for h in ["localhost", "127.0.0.1", "127.3.2.1", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.5", "example.com", "0.0.0.0"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let c = Client::new(
            "http://127.0.0.1:9/v1/chat/completions".into(),
            Some("sk-secret".into()),
            RetryPolicy {
                base: Duration::from_millis(100),
                max_backoff: Duration::from_millis(1000),
                ..RetryPolicy::default()
            },
        );
        for retry in 0..6 {
            let full = Duration::from_millis((100u64 << retry).min(1000));
            let w = c.wait(retry, None, "body");
            assert!(w >= full / 2 && w <= full, "{retry}: {w:?}");
        }
        assert_eq!(
            c.wait(0, Some(Duration::from_secs(3)), "body"),
            Duration::from_secs(3)
        );
        assert_eq!(
            c.redact("echo: Bearer sk-secret".into()),
            "echo: Bearer [API key]"
        );
    }
}
