//! Markup conversions the channel templates need: Markdown to HTML (in-app feed blocks, email
//! visual blocks), HTML to plain text (email `text_body` when the template has none), and HTML
//! escaping for attribute values the engine writes itself.

use pulldown_cmark::{html, Event, Options, Parser};

/// What to do with raw HTML inside Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawHtml {
    /// Pass it through (email: the author writes the HTML and mail clients run no scripts).
    Keep,
    /// Show it as text. The in-app feed's `rendered` HTML is inserted into the app's page, and
    /// Liquid puts other users' data (comments, names) into it: raw HTML there would be stored XSS.
    Escape,
}

/// CommonMark plus tables, strikethrough and task lists, as HTML.
pub(crate) fn markdown_to_html(markdown: &str, raw_html: RawHtml) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    let events = Parser::new_ext(markdown, options).map(|e| match (raw_html, e) {
        (RawHtml::Escape, Event::Html(s) | Event::InlineHtml(s)) => Event::Text(s),
        (_, e) => e,
    });
    html::push_html(&mut out, events);
    out
}

/// Escapes text for use inside an HTML attribute value or element.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Elements whose end starts a new line in the text version.
const BLOCK_TAGS: [&str; 16] = [
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "hr",
    "blockquote",
];

/// A readable plain-text version of an HTML body: tags stripped, `<style>`/`<script>`/`<head>`
/// contents dropped, block elements on their own lines, common entities decoded, blank runs
/// collapsed. Not a full HTML parser; good enough for the text part of an email.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<String> = None;
    while let Some(open) = rest.find('<') {
        if skip_until.is_none() {
            push_collapsed(&mut text, &rest[..open]);
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            // A lone '<' is text, not a tag.
            if skip_until.is_none() {
                push_collapsed(&mut text, &rest[open..]);
            }
            rest = "";
            break;
        };
        let tag = after[..close].trim();
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match &skip_until {
            Some(until) if closing && *until == name => skip_until = None,
            Some(_) => {}
            None if !closing && matches!(name.as_str(), "style" | "script" | "head") => {
                skip_until = Some(name)
            }
            None if BLOCK_TAGS.contains(&name.as_str()) => text.push('\n'),
            None => {}
        }
        rest = &after[close + 1..];
    }
    if skip_until.is_none() {
        push_collapsed(&mut text, rest);
    }
    let decoded = decode_entities(&text);
    let mut out = String::with_capacity(decoded.len());
    let mut blank_run = 0;
    for line in decoded.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Source whitespace (newlines included) is just a space in HTML; line breaks come from tags.
fn push_collapsed(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if c.is_whitespace() { ' ' } else { c }));
}

fn decode_entities(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_commonmark() {
        assert_eq!(
            markdown_to_html("Hello **Ada**\n\n[link](https://x.test)", RawHtml::Keep),
            "<p>Hello <strong>Ada</strong></p>\n<p><a href=\"https://x.test\">link</a></p>\n"
        );
    }

    #[test]
    fn raw_html_kept_or_escaped() {
        let md = "hi <img src=x onerror=alert(1)>\n\n<script>alert(2)</script>";
        assert_eq!(
            markdown_to_html(md, RawHtml::Keep),
            "<p>hi <img src=x onerror=alert(1)></p>\n<script>alert(2)</script>"
        );
        assert_eq!(
            markdown_to_html(md, RawHtml::Escape),
            "<p>hi &lt;img src=x onerror=alert(1)&gt;</p>\n&lt;script&gt;alert(2)&lt;/script&gt;"
        );
    }

    #[test]
    fn escapes_attribute_text() {
        assert_eq!(escape_html("a\"<b>&'"), "a&quot;&lt;b&gt;&amp;&#39;");
    }

    #[test]
    fn html_to_text_keeps_words_and_lines() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body>\
                    <h1>Hi&nbsp;Ada</h1><p>You have <b>3</b> new\n   comments &amp; likes.</p>\
                    <p>a &lt; b</p><br/><script>alert(1)</script>done</body></html>";
        assert_eq!(
            html_to_text(html),
            "Hi Ada\n\nYou have 3 new comments & likes.\n\na < b\n\ndone"
        );
        assert_eq!(html_to_text("1 < 2"), "1 < 2");
        assert_eq!(html_to_text(""), "");
    }
}
