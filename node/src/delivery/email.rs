//! The rendered email content (`{from, to, cc?, bcc?, reply_to?, subject_line, html_body,
//! text_body}`) parsed once for all email providers, so SMTP and the HTTP APIs agree on what an
//! address is.
//!
//! Address fields may be a string (one address or a comma-separated list) or an array of strings;
//! each address is `email@host` or `Name <email@host>` (the name optionally quoted).

use std::fmt;

use serde_json::Value;

use super::fields::Fields;

/// One mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) name: Option<String>,
    pub(crate) email: String,
}

impl Address {
    pub(crate) fn parse(text: &str) -> Result<Address, String> {
        let text = text.trim();
        let (name, email) = match (text.rfind('<'), text.strip_suffix('>')) {
            (Some(open), Some(inner)) => {
                let name = text[..open].trim().trim_matches('"').trim();
                let name = (!name.is_empty()).then(|| name.replace("\\\"", "\""));
                (name, inner[open + 1..].trim())
            }
            _ => (None, text),
        };
        let valid = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !email.contains(|c: char| c.is_whitespace() || "<>,;\"".contains(c))
        });
        if !valid {
            return Err(format!("invalid email address {text:?}"));
        }
        Ok(Address {
            name,
            email: email.to_string(),
        })
    }
}

impl fmt::Display for Address {
    /// RFC 5322 form: `"Name" <email>`, or the bare address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "\"{}\" <{}>", name.replace('"', "\\\""), self.email),
            None => f.write_str(&self.email),
        }
    }
}

/// A rendered email, validated.
#[derive(Debug, Clone)]
pub(crate) struct Email<'a> {
    pub(crate) from: Address,
    pub(crate) to: Vec<Address>,
    pub(crate) cc: Vec<Address>,
    pub(crate) bcc: Vec<Address>,
    pub(crate) reply_to: Vec<Address>,
    pub(crate) subject: &'a str,
    pub(crate) html: Option<&'a str>,
    pub(crate) text: Option<&'a str>,
}

impl<'a> Email<'a> {
    pub(crate) fn parse(content: &'a Value) -> Result<Email<'a>, String> {
        let fields = Fields::new(content, "content");
        let from = Address::parse(fields.str("from")?)?;
        let to = addresses(fields.get("to"))?;
        if to.is_empty() {
            return Err("content.to has no address".into());
        }
        let subject = fields
            .get("subject_line")
            .and_then(Value::as_str)
            .ok_or("content.subject_line is missing")?;
        let html = fields.opt_str("html_body");
        let text = fields.opt_str("text_body");
        if html.is_none() && text.is_none() {
            return Err("content has neither html_body nor text_body".into());
        }
        Ok(Email {
            from,
            to,
            cc: addresses(fields.get("cc"))?,
            bcc: addresses(fields.get("bcc"))?,
            reply_to: addresses(fields.get("reply_to"))?,
            subject,
            html,
            text,
        })
    }
}

/// A list field: absent → empty; a string → split at commas outside quotes and angle brackets.
fn addresses(value: Option<&Value>) -> Result<Vec<Address>, String> {
    let mut out = Vec::new();
    let mut push_all = |text: &str| -> Result<(), String> {
        for part in split_list(text) {
            if !part.trim().is_empty() {
                out.push(Address::parse(part)?);
            }
        }
        Ok(())
    };
    match value {
        None => {}
        Some(Value::String(s)) => push_all(s)?,
        Some(Value::Array(items)) => {
            for item in items {
                push_all(item.as_str().ok_or("address lists must hold strings")?)?;
            }
        }
        Some(other) => return Err(format!("expected address string or list, got {other}")),
    }
    Ok(out)
}

fn split_list(text: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut angled) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' => angled = true,
            '>' => angled = false,
            ',' if !quoted && !angled => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Comma-joined display form, for APIs that take address lists as one string.
pub(crate) fn joined(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(Address::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_addresses_and_lists() {
        let a = Address::parse(" \"Doe, Jane\" <jane@example.com> ").unwrap();
        assert_eq!(a.name.as_deref(), Some("Doe, Jane"));
        assert_eq!(a.email, "jane@example.com");
        assert_eq!(a.to_string(), "\"Doe, Jane\" <jane@example.com>");
        assert_eq!(Address::parse("x@y").unwrap().to_string(), "x@y");
        for bad in ["", "nobody", "@y", "a b@c", "Name <>", "<a@b"] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
        let list = addresses(Some(&json!(
            "\"Doe, Jane\" <jane@example.com>, bob@example.com"
        )))
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(addresses(Some(&json!(["a@b", "c@d"]))).unwrap().len(), 2);
        assert!(addresses(Some(&json!(3))).is_err());
    }

    #[test]
    fn email_requires_from_to_and_a_body() {
        let ok = json!({"from": "a@b", "to": "c@d", "subject_line": "", "text_body": "t"});
        assert!(Email::parse(&ok).is_ok());
        for bad in [
            json!({"to": "c@d", "subject_line": "s", "text_body": "t"}),
            json!({"from": "a@b", "to": [], "subject_line": "s", "text_body": "t"}),
            json!({"from": "a@b", "to": "c@d", "text_body": "t"}),
            json!({"from": "a@b", "to": "c@d", "subject_line": "s"}),
            json!("not an object"),
        ] {
            assert!(Email::parse(&bad).is_err(), "{bad}");
        }
    }
}
