//! SMTP against a real SMTP server: aiosmtpd (Python), started by the test on a free port. Missing
//! python3 or aiosmtpd fails the test with instructions; it never passes silently.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::fakes::{email_content, outgoing, providers};
use crate::delivery::{Outcome, ProvidersConfig};

const SERVER: &str = include_str!("smtp_server.py");

/// A running aiosmtpd; killed when dropped.
struct SmtpServer {
    port: u16,
    received: tempfile::NamedTempFile,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    async fn start(mode: &str) -> SmtpServer {
        let check = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        match check {
            Ok(output) if output.status.success() => {}
            other => panic!(
                "the SMTP test needs python3 with aiosmtpd \
                 (pip install -r node/tests/sdk/python/requirements.txt): {other:?}"
            ),
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("smtp_server.py");
        std::fs::write(&script, SERVER).expect("write the server script");
        let received = tempfile::NamedTempFile::new().expect("temp file");
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(received.path())
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().expect("server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(
            matches!(ready, Ok(Ok(Some(ref line))) if line == "READY"),
            "aiosmtpd did not start: {ready:?}"
        );
        SmtpServer {
            port,
            received,
            _child: child,
            _dir: dir,
        }
    }

    fn messages(&self) -> Vec<Value> {
        read_lines(self.received.path())
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("server wrote JSON"))
        .collect()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn smtp_delivers_a_multipart_message_to_a_real_server() {
    let server = SmtpServer::start("open").await;
    let providers = providers(ProvidersConfig::default());
    // Default TLS mode (opportunistic) against a server without STARTTLS: plain SMTP.
    let settings = json!({"host": "127.0.0.1", "port": server.port});
    let out = outgoing("smtp", "email", settings, email_content(), None);
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_eq!(attempt.logs.len(), 1);
    let log = &attempt.logs[0];
    assert_eq!(log.service_name, "smtp");
    assert_eq!(log.request.host, format!("127.0.0.1:{}", server.port));
    assert_eq!(log.response.as_ref().map(|r| r.status), Some(250));
    assert!(log.request.body.contains("Subject: Your order shipped"));

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["mail_from"], "noreply@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!(["jane@example.com", "ops@example.com", "audit@example.com"])
    );
    let headers = &m["headers"];
    assert_eq!(headers["from"], "Herald <noreply@example.com>");
    assert_eq!(headers["to"], "Jane Doe <jane@example.com>");
    assert_eq!(headers["cc"], "ops@example.com");
    assert_eq!(headers["reply-to"], "support@example.com");
    assert_eq!(headers["subject"], "Your order shipped");
    assert_eq!(headers["message-id"], "<msg_2b1fUq0Xn8Lw@example.com>");
    assert_eq!(headers["x-herald-message-id"], "msg_2b1fUq0Xn8Lw");
    assert!(
        headers.get("bcc").is_none(),
        "Bcc must not be transmitted: {headers}"
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    let parts = m["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"], "text/plain");
    assert_eq!(
        parts[0]["body"].as_str().map(str::trim_end),
        Some("Order 42 shipped")
    );
    assert_eq!(parts[1]["type"], "text/html");
    assert_eq!(
        parts[1]["body"].as_str().map(str::trim_end),
        Some("<p>Order <b>42</b> shipped</p>")
    );
}

#[tokio::test]
async fn smtp_authenticates_and_a_rejected_login_is_terminal() {
    let server = SmtpServer::start("auth").await;
    let providers = providers(ProvidersConfig::default());
    let settings = |password: &str| {
        json!({"host": "127.0.0.1", "port": server.port, "tls": "none",
               "username": "herald", "password": password})
    };
    let out = outgoing("smtp", "email", settings("s3cret"), email_content(), None);
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_eq!(server.messages()[0]["login"], "herald");
    assert!(!serde_json::to_string(&attempt.logs)
        .expect("json")
        .contains("s3cret"));

    let out = outgoing("smtp", "email", settings("wrong"), email_content(), None);
    let attempt = providers.send(&out).await;
    assert!(matches!(attempt.outcome, Outcome::Failed(_)), "{attempt:?}");
    assert_eq!(
        attempt.logs[0].response.as_ref().map(|r| r.status),
        Some(535)
    );
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn smtp_without_a_server_is_retryable_and_bad_settings_are_not() {
    let providers = providers(ProvidersConfig::default());
    let settings = json!({"host": "127.0.0.1", "port": free_port(), "tls": "none"});
    let attempt = providers
        .send(&outgoing("smtp", "email", settings, email_content(), None))
        .await;
    assert!(
        matches!(attempt.outcome, Outcome::Retryable(_)),
        "{attempt:?}"
    );
    assert!(attempt.logs[0].response.is_none());
    for settings in [
        json!({"port": 25}),
        json!({"host": "h", "port": "x"}),
        json!({"host": "h", "tls": "maybe"}),
        json!({"host": "h", "username": "u"}),
    ] {
        let attempt = providers
            .send(&outgoing("smtp", "email", settings, email_content(), None))
            .await;
        assert!(matches!(attempt.outcome, Outcome::Failed(_)), "{attempt:?}");
    }
}
