//! Channel templates (Knock §5.4): compiled once per workflow version, rendered per recipient into
//! the content shape each channel's provider (and the messages API) consumes.
//!
//! ```text
//!   email        {"from","to","cc"?,"bcc"?,"reply_to"?,"subject_line","html_body","text_body"}
//!   sms          {"to","body"}
//!   push         {"title","body","delivery_type":"content"|"silent","data"?}
//!   chat         {"markdown_body","summary"?,"json_content"?}
//!   in_app_feed  {"blocks":[{"type":"markdown","name":"body","content","rendered"},
//!                           {"type":"button_set","name":"actions","buttons":[{"name","label","action"}]}?],
//!                 "action_url"?}
//!   http         {"method","url","headers":[{"key","value"}],"query_params":[{"key","value"}],"body"}
//! ```
//!
//! Besides Liquid's standard filters, templates have Knock's `json` (see [`super::liquid_filters`]).
//!
//! Liquid globals are `recipient actor tenant data vars workflow`, plus every top-level key of
//! `data` (Knock templates write `{{ comment_text }}`); the reserved names win on conflict. Missing
//! values render as nothing (see [`super::liquid_json`]). Rendering never panics: a Liquid runtime
//! error or a JSON field that does not render to JSON is a [`RenderError::Template`]; an email or
//! SMS with nowhere to go is a [`RenderError::NoAddress`] (the planner skips the step).
//!
//! The in-app feed's `rendered` HTML escapes raw HTML found in the Markdown (it lands in the app's
//! page with other users' data in it); email keeps raw HTML.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::definition::{ChannelInfo, ChannelType, Problem};
use super::liquid_filters::JsonFilterParser;
use super::liquid_json::{Globals, LiquidJson};
use super::markup::{escape_html, html_to_text, markdown_to_html, RawHtml};

/// Names templates see besides the data keys; they shadow data keys of the same name.
const RESERVED_GLOBALS: [&str; 6] = ["recipient", "actor", "tenant", "data", "vars", "workflow"];

fn parser() -> Option<&'static liquid::Parser> {
    static PARSER: OnceLock<Option<liquid::Parser>> = OnceLock::new();
    PARSER
        .get_or_init(|| {
            liquid::ParserBuilder::with_stdlib()
                .filter(JsonFilterParser)
                .build()
                .ok()
        })
        .as_ref()
}

/// One parsed Liquid string.
pub(crate) struct Tpl {
    source: String,
    template: liquid::Template,
}

impl fmt::Debug for Tpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tpl").field(&self.source).finish()
    }
}

impl Tpl {
    /// Parses `source`; the error is a one-line-per-detail message.
    pub(crate) fn parse(source: &str) -> Result<Tpl, String> {
        let parser = parser().ok_or("the Liquid parser could not be built")?;
        match parser.parse(source) {
            Ok(template) => Ok(Tpl {
                source: source.to_string(),
                template,
            }),
            Err(e) => Err(format!("invalid Liquid: {}", one_line(&e.to_string()))),
        }
    }

    pub(crate) fn render(&self, globals: &Globals, field: &str) -> Result<String, RenderError> {
        self.template
            .render(globals)
            .map_err(|e| RenderError::Template(format!("`{field}`: {}", one_line(&e.to_string()))))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a step could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderError {
    /// The recipient has no address for this channel (no email, no phone number).
    NoAddress(String),
    /// The template failed at render time.
    Template(String),
}

/// The Liquid globals of one render (see the module docs).
pub(crate) fn globals(
    recipient: &Value,
    actor: Option<&Value>,
    tenant: Option<&Value>,
    data: &Value,
    vars: &Value,
    workflow: &Value,
) -> Globals {
    let mut g: BTreeMap<String, LiquidJson> = BTreeMap::new();
    if let Some(m) = data.as_object() {
        for (k, v) in m {
            if !RESERVED_GLOBALS.contains(&k.as_str()) {
                g.insert(k.clone(), LiquidJson::from(v));
            }
        }
    }
    let null = Value::Null;
    for (name, v) in [
        ("recipient", recipient),
        ("actor", actor.unwrap_or(&null)),
        ("tenant", tenant.unwrap_or(&null)),
        ("data", data),
        ("vars", vars),
        ("workflow", workflow),
    ] {
        g.insert(name.to_string(), LiquidJson::from(v));
    }
    Globals::new(g)
}

/// A JSON-valued field: a JSON value used as is, or a Liquid string that must render to JSON.
#[derive(Debug)]
pub(crate) enum JsonTemplate {
    Static(Value),
    Liquid(Tpl),
}

impl JsonTemplate {
    /// Compiles a JSON field at `path`: strings are Liquid, objects are static.
    pub(crate) fn compile(
        value: &Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<JsonTemplate> {
        match value {
            Value::String(s) => match Tpl::parse(s) {
                Ok(t) => Some(JsonTemplate::Liquid(t)),
                Err(reason) => {
                    problems.push(Problem::new(path, reason));
                    None
                }
            },
            Value::Object(_) => Some(JsonTemplate::Static(value.clone())),
            _ => {
                problems.push(Problem::new(
                    path,
                    "must be a JSON object or a string of JSON/Liquid",
                ));
                None
            }
        }
    }

    pub(crate) fn render(&self, globals: &Globals, field: &str) -> Result<Value, RenderError> {
        match self {
            JsonTemplate::Static(v) => Ok(v.clone()),
            JsonTemplate::Liquid(t) => {
                let text = t.render(globals, field)?;
                serde_json::from_str(&text).map_err(|e| {
                    RenderError::Template(format!("`{field}` did not render to JSON: {e}"))
                })
            }
        }
    }

    /// Like [`JsonTemplate::render`], but the result must be a JSON object.
    pub(crate) fn render_object(
        &self,
        globals: &Globals,
        field: &str,
    ) -> Result<Map<String, Value>, RenderError> {
        match self.render(globals, field)? {
            Value::Object(m) => Ok(m),
            other => Err(RenderError::Template(format!(
                "`{field}` must render to a JSON object, got {}",
                json_kind(&other)
            ))),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A compiled channel template.
#[derive(Debug)]
pub(crate) enum StepTemplate {
    Email(Box<EmailTemplate>),
    Sms {
        body: Tpl,
        to_number: Option<Tpl>,
    },
    Push {
        title: Tpl,
        body: Tpl,
        delivery_type: &'static str,
        payload_overrides: Option<JsonTemplate>,
    },
    Chat {
        markdown_body: Tpl,
        summary: Option<Tpl>,
        json_body: Option<JsonTemplate>,
    },
    InAppFeed {
        markdown_body: Tpl,
        action_url: Option<Tpl>,
        buttons: Vec<Button>,
    },
    Http {
        method: String,
        url: Tpl,
        headers: Vec<(Tpl, Tpl)>,
        query_params: Vec<(Tpl, Tpl)>,
        body: Option<Tpl>,
    },
}

#[derive(Debug)]
pub(crate) struct EmailTemplate {
    subject: Tpl,
    body: EmailBody,
    text_body: Option<Tpl>,
    from_address: Option<Tpl>,
    from_name: Option<Tpl>,
    reply_to_address: Option<Tpl>,
    cc_address: Option<Tpl>,
    bcc_address: Option<Tpl>,
}

#[derive(Debug)]
enum EmailBody {
    Html(Tpl),
    Blocks(Vec<VisualBlock>),
}

#[derive(Debug)]
enum VisualBlock {
    Markdown(Tpl),
    Html(Tpl),
    Buttons(Vec<Button>),
    Divider,
    Image {
        url: Tpl,
        alt: Option<Tpl>,
        action: Option<Tpl>,
    },
}

#[derive(Debug)]
pub(crate) struct Button {
    label: Tpl,
    action: Tpl,
}

const HTTP_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Reads Liquid fields out of one JSON object, recording a problem per bad field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: String,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Fields<'a> {
    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.path)
    }

    fn problem(&mut self, field: &str, reason: impl Into<String>) {
        let path = self.at(field);
        self.problems.push(Problem::new(path, reason));
    }

    fn optional(&mut self, field: &str) -> Option<Tpl> {
        match self.obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Tpl::parse(s) {
                Ok(t) => Some(t),
                Err(reason) => {
                    self.problem(field, reason);
                    None
                }
            },
            Some(_) => {
                self.problem(field, "must be a string");
                None
            }
        }
    }

    fn required(&mut self, field: &str) -> Option<Tpl> {
        if matches!(self.obj.get(field), None | Some(Value::Null)) {
            self.problem(field, "is required");
            return None;
        }
        self.optional(field)
    }

    fn nested(&mut self, field: &str) -> Option<Fields<'_>> {
        match self.obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Object(obj)) => Some(Fields {
                obj,
                path: format!("{}.{field}", self.path),
                problems: self.problems,
            }),
            Some(_) => {
                self.problem(field, "must be an object");
                None
            }
        }
    }

    /// An array of objects at `field` (absent = empty), each read by `f`.
    fn each<T>(&mut self, field: &str, mut f: impl FnMut(&mut Fields<'_>) -> Option<T>) -> Vec<T> {
        let items = match self.obj.get(field) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.problem(field, "must be an array");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}.{field}[{i}]", self.path);
            match item.as_object() {
                Some(obj) => {
                    let mut fields = Fields {
                        obj,
                        path,
                        problems: self.problems,
                    };
                    out.extend(f(&mut fields));
                }
                None => self.problems.push(Problem::new(path, "must be an object")),
            }
        }
        out
    }

    fn button(&mut self) -> Option<Button> {
        let label = self.required("label");
        let action = self.required("action");
        Some(Button {
            label: label?,
            action: action?,
        })
    }

    fn key_values(&mut self, field: &str) -> Vec<(Tpl, Tpl)> {
        self.each(field, |kv| {
            let k = kv.required("key");
            let v = kv.required("value");
            Some((k?, v?))
        })
    }
}

impl StepTemplate {
    /// Compiles the template of a `channel_type` step at `path` (e.g. `steps[2]`), with the step's
    /// `channel_overrides`. Every problem is pushed; `None` when any was found.
    pub(crate) fn compile(
        channel_type: ChannelType,
        template: &Map<String, Value>,
        overrides: Option<&Map<String, Value>>,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<StepTemplate> {
        let before = problems.len();
        let mut f = Fields {
            obj: template,
            path: format!("{path}.template"),
            problems,
        };
        let compiled = match channel_type {
            ChannelType::Email => compile_email(&mut f, overrides, path),
            ChannelType::Sms => {
                let body = f.required("text_body");
                let to_number = f
                    .nested("settings")
                    .and_then(|mut s| s.optional("to_number"));
                body.map(|body| StepTemplate::Sms { body, to_number })
            }
            ChannelType::Push => {
                let title = f.required("title");
                let body = f.required("text_body");
                let (delivery_type, payload_overrides) = compile_push_settings(&mut f);
                match (title, body) {
                    (Some(title), Some(body)) => Some(StepTemplate::Push {
                        title,
                        body,
                        delivery_type,
                        payload_overrides,
                    }),
                    _ => None,
                }
            }
            ChannelType::Chat => {
                let markdown_body = f.required("markdown_body");
                let summary = f.optional("summary");
                let json_body = match template.get("json_body") {
                    None | Some(Value::Null) => None,
                    Some(v) => JsonTemplate::compile(v, &f.at("json_body"), f.problems),
                };
                markdown_body.map(|markdown_body| StepTemplate::Chat {
                    markdown_body,
                    summary,
                    json_body,
                })
            }
            ChannelType::InAppFeed => {
                let markdown_body = f.required("markdown_body");
                let action_url = f.optional("action_url");
                let buttons = f.each("action_buttons", |b| b.button());
                markdown_body.map(|markdown_body| StepTemplate::InAppFeed {
                    markdown_body,
                    action_url,
                    buttons,
                })
            }
            ChannelType::Http => compile_http(&mut f),
        };
        if problems.len() > before {
            return None;
        }
        compiled
    }

    /// Renders the content for one recipient (see the module docs for the shapes).
    pub(crate) fn render(
        &self,
        globals: &Globals,
        recipient: &Value,
        channel: &ChannelInfo,
    ) -> Result<Value, RenderError> {
        match self {
            StepTemplate::Email(e) => e.render(globals, recipient, channel),
            StepTemplate::Sms { body, to_number } => {
                let to = match to_number {
                    Some(t) => t.render(globals, "settings.to_number")?,
                    None => string_prop(recipient, "phone_number"),
                };
                if to.trim().is_empty() {
                    return Err(RenderError::NoAddress(
                        "recipient has no phone_number".to_string(),
                    ));
                }
                Ok(json!({"to": to, "body": body.render(globals, "text_body")?}))
            }
            StepTemplate::Push {
                title,
                body,
                delivery_type,
                payload_overrides,
            } => {
                let mut out = Map::new();
                out.insert("title".into(), json!(title.render(globals, "title")?));
                out.insert("body".into(), json!(body.render(globals, "text_body")?));
                out.insert("delivery_type".into(), json!(delivery_type));
                if let Some(p) = payload_overrides {
                    let data = p.render_object(globals, "settings.payload_overrides")?;
                    out.insert("data".into(), Value::Object(data));
                }
                Ok(Value::Object(out))
            }
            StepTemplate::Chat {
                markdown_body,
                summary,
                json_body,
            } => {
                let mut out = Map::new();
                out.insert(
                    "markdown_body".into(),
                    json!(markdown_body.render(globals, "markdown_body")?),
                );
                if let Some(s) = summary {
                    out.insert("summary".into(), json!(s.render(globals, "summary")?));
                }
                if let Some(j) = json_body {
                    out.insert("json_content".into(), j.render(globals, "json_body")?);
                }
                Ok(Value::Object(out))
            }
            StepTemplate::InAppFeed {
                markdown_body,
                action_url,
                buttons,
            } => {
                let content = markdown_body.render(globals, "markdown_body")?;
                let rendered = markdown_to_html(&content, RawHtml::Escape);
                let mut blocks = vec![json!({
                    "type": "markdown", "name": "body", "content": content, "rendered": rendered,
                })];
                if !buttons.is_empty() {
                    let buttons = render_buttons(buttons, globals, "action_buttons")?
                        .into_iter()
                        .enumerate()
                        .map(|(i, (label, action))| {
                            json!({"name": button_name(i), "label": label, "action": action})
                        })
                        .collect::<Vec<_>>();
                    blocks
                        .push(json!({"type": "button_set", "name": "actions", "buttons": buttons}));
                }
                let mut out = Map::new();
                if let Some(u) = action_url {
                    // Knock's feed items carry the URL as a text block named `action_url`.
                    let url = u.render(globals, "action_url")?;
                    blocks.push(json!({
                        "type": "text", "name": "action_url", "content": url, "rendered": url,
                    }));
                    out.insert("action_url".into(), json!(url));
                }
                out.insert("blocks".into(), Value::Array(blocks));
                Ok(Value::Object(out))
            }
            StepTemplate::Http {
                method,
                url,
                headers,
                query_params,
                body,
            } => Ok(json!({
                "method": method,
                "url": url.render(globals, "url")?,
                "headers": render_key_values(headers, globals, "headers")?,
                "query_params": render_key_values(query_params, globals, "query_params")?,
                "body": match body {
                    Some(b) => b.render(globals, "body")?,
                    None => String::new(),
                },
            })),
        }
    }
}

/// Knock names feed buttons by position.
fn button_name(i: usize) -> String {
    match i {
        0 => "primary".to_string(),
        1 => "secondary".to_string(),
        n => format!("button_{}", n + 1),
    }
}

fn render_buttons(
    buttons: &[Button],
    globals: &Globals,
    field: &str,
) -> Result<Vec<(String, String)>, RenderError> {
    buttons
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Ok((
                b.label.render(globals, &format!("{field}[{i}].label"))?,
                b.action.render(globals, &format!("{field}[{i}].action"))?,
            ))
        })
        .collect()
}

fn render_key_values(
    pairs: &[(Tpl, Tpl)],
    globals: &Globals,
    field: &str,
) -> Result<Value, RenderError> {
    let rendered = pairs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            Ok(json!({
                "key": k.render(globals, &format!("{field}[{i}].key"))?,
                "value": v.render(globals, &format!("{field}[{i}].value"))?,
            }))
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    Ok(Value::Array(rendered))
}

fn string_prop(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn compile_push_settings(f: &mut Fields<'_>) -> (&'static str, Option<JsonTemplate>) {
    let Some(mut settings) = f.nested("settings") else {
        return ("content", None);
    };
    let delivery_type = match settings.obj.get("delivery_type") {
        None | Some(Value::Null) => "content",
        Some(Value::String(s)) if s == "content" => "content",
        Some(Value::String(s)) if s == "silent" => "silent",
        Some(_) => {
            settings.problem("delivery_type", "must be `content` or `silent`");
            "content"
        }
    };
    let payload = match settings.obj.get("payload_overrides") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let path = settings.at("payload_overrides");
            JsonTemplate::compile(v, &path, settings.problems)
        }
    };
    (delivery_type, payload)
}

fn compile_http(f: &mut Fields<'_>) -> Option<StepTemplate> {
    let method = match f.obj.get("method") {
        Some(Value::String(m)) if HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            Some(m.to_ascii_uppercase())
        }
        None | Some(Value::Null) => {
            f.problem("method", "is required");
            None
        }
        Some(_) => {
            f.problem("method", "must be one of get, post, put, patch, delete");
            None
        }
    };
    let url = f.required("url");
    let body = f.optional("body");
    let headers = f.key_values("headers");
    let query_params = f.key_values("query_params");
    Some(StepTemplate::Http {
        method: method?,
        url: url?,
        headers,
        query_params,
        body,
    })
}

fn compile_email(
    f: &mut Fields<'_>,
    overrides: Option<&Map<String, Value>>,
    step_path: &str,
) -> Option<StepTemplate> {
    let subject = f.required("subject");
    let text_body = f.optional("text_body");
    let has_blocks = !matches!(f.obj.get("visual_blocks"), None | Some(Value::Null));
    let body = match (f.obj.get("html_body"), has_blocks) {
        (Some(Value::String(_)), _) => f.optional("html_body").map(EmailBody::Html),
        (_, true) => Some(EmailBody::Blocks(f.each("visual_blocks", compile_block))),
        _ => {
            f.problem(
                "html_body",
                "an email template needs `html_body` or `visual_blocks`",
            );
            None
        }
    };
    let empty = Map::new();
    let mut o = Fields {
        obj: overrides.unwrap_or(&empty),
        path: format!("{step_path}.channel_overrides"),
        problems: f.problems,
    };
    let email = EmailTemplate {
        from_address: o.optional("from_address"),
        from_name: o.optional("from_name"),
        reply_to_address: o.optional("reply_to_address"),
        cc_address: o.optional("cc_address"),
        bcc_address: o.optional("bcc_address"),
        subject: subject?,
        body: body?,
        text_body,
    };
    Some(StepTemplate::Email(Box::new(email)))
}

fn compile_block(b: &mut Fields<'_>) -> Option<VisualBlock> {
    let kind = b
        .obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "markdown" => b.required("content").map(VisualBlock::Markdown),
        "html" => b.required("content").map(VisualBlock::Html),
        "button_set" => Some(VisualBlock::Buttons(b.each("buttons", |x| x.button()))),
        "divider" => Some(VisualBlock::Divider),
        "image" => {
            let url = b.required("url");
            let alt = b.optional("alt");
            let action = b.optional("action");
            url.map(|url| VisualBlock::Image { url, alt, action })
        }
        "partial" => {
            b.problem(
                "type",
                "partial blocks are not supported by this Herald version",
            );
            None
        }
        other => {
            b.problem(
                "type",
                format!("unknown visual block type `{other}`; expected markdown, html, button_set, divider or image"),
            );
            None
        }
    }
}

impl EmailTemplate {
    fn render(
        &self,
        globals: &Globals,
        recipient: &Value,
        channel: &ChannelInfo,
    ) -> Result<Value, RenderError> {
        let to = string_prop(recipient, "email");
        if to.trim().is_empty() {
            return Err(RenderError::NoAddress("recipient has no email".to_string()));
        }
        let setting = |tpl: &Option<Tpl>, key: &str| -> Result<String, RenderError> {
            match tpl {
                Some(t) => t.render(globals, &format!("channel_overrides.{key}")),
                None => Ok(string_prop(&channel.settings, key)),
            }
        };
        let from_address = setting(&self.from_address, "from_address")?;
        if from_address.trim().is_empty() {
            return Err(RenderError::Template(format!(
                "no from address: set `from_address` on channel `{}` or in the step's channel_overrides",
                channel.key
            )));
        }
        let from_name = setting(&self.from_name, "from_name")?;
        let from = if from_name.trim().is_empty() {
            from_address
        } else {
            format!("{} <{}>", from_name.trim(), from_address.trim())
        };
        let html_body = match &self.body {
            EmailBody::Html(t) => t.render(globals, "html_body")?,
            EmailBody::Blocks(blocks) => render_blocks(blocks, globals)?,
        };
        let text_body = match &self.text_body {
            Some(t) => t.render(globals, "text_body")?,
            None => html_to_text(&html_body),
        };
        let mut out = Map::new();
        out.insert("from".into(), json!(from));
        out.insert("to".into(), json!(to));
        for (key, tpl, field) in [
            ("cc", &self.cc_address, "cc_address"),
            ("bcc", &self.bcc_address, "bcc_address"),
        ] {
            if let Some(t) = tpl {
                let v = t.render(globals, &format!("channel_overrides.{field}"))?;
                if !v.trim().is_empty() {
                    out.insert(key.into(), json!(v));
                }
            }
        }
        let reply_to = setting(&self.reply_to_address, "reply_to_address")?;
        if !reply_to.trim().is_empty() {
            out.insert("reply_to".into(), json!(reply_to));
        }
        out.insert(
            "subject_line".into(),
            json!(self.subject.render(globals, "subject")?),
        );
        out.insert("html_body".into(), json!(html_body));
        out.insert("text_body".into(), json!(text_body));
        Ok(Value::Object(out))
    }
}

fn render_blocks(blocks: &[VisualBlock], globals: &Globals) -> Result<String, RenderError> {
    let mut html = String::new();
    for (i, block) in blocks.iter().enumerate() {
        let field = format!("visual_blocks[{i}]");
        match block {
            VisualBlock::Markdown(t) => {
                html.push_str(&markdown_to_html(
                    &t.render(globals, &field)?,
                    RawHtml::Keep,
                ));
            }
            VisualBlock::Html(t) => html.push_str(&t.render(globals, &field)?),
            VisualBlock::Buttons(buttons) => {
                html.push_str("<div class=\"buttons\">");
                for (label, action) in render_buttons(buttons, globals, &field)? {
                    html.push_str(&format!(
                        "<a class=\"button\" href=\"{}\">{}</a>",
                        escape_html(&action),
                        escape_html(&label)
                    ));
                }
                html.push_str("</div>");
            }
            VisualBlock::Divider => html.push_str("<hr />"),
            VisualBlock::Image { url, alt, action } => {
                let alt = match alt {
                    Some(a) => a.render(globals, &format!("{field}.alt"))?,
                    None => String::new(),
                };
                let img = format!(
                    "<img src=\"{}\" alt=\"{}\" />",
                    escape_html(&url.render(globals, &format!("{field}.url"))?),
                    escape_html(&alt)
                );
                match action {
                    Some(a) => {
                        let href = a.render(globals, &format!("{field}.action"))?;
                        html.push_str(&format!("<a href=\"{}\">{img}</a>", escape_html(&href)));
                    }
                    None => html.push_str(&img),
                }
            }
        }
    }
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(channel_type: ChannelType, settings: Value) -> ChannelInfo {
        ChannelInfo {
            id: "00000000-0000-0000-0000-000000000001".into(),
            key: channel_type.as_str().into(),
            channel_type,
            settings,
            sandbox: false,
        }
    }

    fn recipient() -> Value {
        json!({"id": "u1", "name": "Ada", "email": "ada@example.com", "phone_number": "+15550001111"})
    }

    fn default_globals(data: Value) -> Globals {
        globals(
            &recipient(),
            Some(&json!({"id": "a1", "name": "Bob"})),
            None,
            &data,
            &json!({"app": "Herald"}),
            &json!({"key": "new-comment"}),
        )
    }

    fn compile_ok(
        channel_type: ChannelType,
        template: Value,
        overrides: Option<Value>,
    ) -> StepTemplate {
        let mut problems = Vec::new();
        let t = template.as_object().cloned().unwrap_or_default();
        let o = overrides.and_then(|o| o.as_object().cloned());
        let compiled =
            StepTemplate::compile(channel_type, &t, o.as_ref(), "steps[0]", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        compiled.expect("compiled")
    }

    fn render(
        channel_type: ChannelType,
        template: Value,
        settings: Value,
        data: Value,
    ) -> Result<Value, RenderError> {
        compile_ok(channel_type, template, None).render(
            &default_globals(data),
            &recipient(),
            &channel(channel_type, settings),
        )
    }

    #[test]
    fn globals_expose_data_keys_and_forgive_missing_values() {
        let t = Tpl::parse(
            "{{ recipient.name }}/{{ comment }}/{{ data.comment }}/{{ actor.name }}/{{ vars.app }}/\
             [{{ recipient.nickname }}][{{ nothing.at.all }}][{{ tenant.name }}][{{ data.list[5] }}]\
             {% if recipient.nickname %}x{% else %}y{% endif %}{{ recipient.nickname | default: 'z' }}",
        )
        .expect("parses");
        let g = default_globals(json!({"comment": "hi", "list": [1], "recipient": "shadowed"}));
        assert_eq!(
            t.render(&g, "f").expect("renders"),
            "Ada/hi/hi/Bob/Herald/[][][][]yz"
        );
    }

    #[test]
    fn loops_and_filters_work_over_json() {
        let t = Tpl::parse(
            "{% for t in data.tags %}{{ t | upcase }}{% unless forloop.last %},{% endunless %}{% endfor %} \
             {{ data.tags | size }} {{ data.n | plus: 1 }} {{ data.obj.k }}",
        )
        .expect("parses");
        let g = default_globals(json!({"tags": ["a", "b"], "n": 41, "obj": {"k": true}}));
        assert_eq!(t.render(&g, "f").expect("renders"), "A,B 2 42 true");
    }

    #[test]
    fn json_filter_escapes_and_keeps_types() {
        let t = Tpl::parse(
            "{{ data.items | json }}|{{ data.quote | json }}|{{ data.n | json }}|{{ data.missing | json }}|{{ data.obj | json }}",
        )
        .expect("parses");
        let g = default_globals(json!({
            "items": [{"name": "a \"b\"", "ok": true}, 2.5],
            "quote": "say \"hi\"\n\\ </script>",
            "n": 7,
            "obj": {"z": 1, "a": null},
        }));
        assert_eq!(
            t.render(&g, "f").expect("renders"),
            r#"[{"name":"a \"b\"","ok":true},2.5]|"say \"hi\"\n\\ </script>"|7|null|{"a":null,"z":1}"#
        );
        assert!(Tpl::parse("{{ data.x | json: 2 }}").is_err());
    }

    #[test]
    fn json_filter_makes_update_data_safe() {
        let t = JsonTemplate::compile(
            &json!(r#"{"comment": {{ data.comment | json }}, "tags": {{ data.tags | json }}}"#),
            "settings.data",
            &mut Vec::new(),
        )
        .expect("compiles");
        let data = json!({"comment": "he said \"no\", then {{ left }}", "tags": ["x", "y"]});
        assert_eq!(
            t.render(&default_globals(data.clone()), "settings.data"),
            Ok(data)
        );
    }

    #[test]
    fn render_errors_are_values() {
        let t = Tpl::parse("{{ data.n | divided_by: 0 }}").expect("parses");
        let err = t.render(&default_globals(json!({"n": 1})), "text_body");
        match err {
            Err(RenderError::Template(msg)) => assert!(msg.starts_with("`text_body`:"), "{msg}"),
            other => panic!("expected a template error, got {other:?}"),
        }
        assert!(Tpl::parse("{% if %}").is_err());
        assert!(Tpl::parse("{{ unclosed").is_err());
    }

    #[test]
    fn email_shape_with_channel_settings_and_overrides() {
        let settings = json!({"from_address": "hi@herald.test", "from_name": "Herald", "reply_to_address": "support@herald.test"});
        let out = render(
            ChannelType::Email,
            json!({"subject": "New comment from {{ actor.name }}", "html_body": "<p>{{ comment }}</p>"}),
            settings.clone(),
            json!({"comment": "Nice &amp; clean"}),
        )
        .expect("renders");
        assert_eq!(
            out,
            json!({
                "from": "Herald <hi@herald.test>", "to": "ada@example.com",
                "reply_to": "support@herald.test", "subject_line": "New comment from Bob",
                "html_body": "<p>Nice &amp; clean</p>", "text_body": "Nice & clean",
            })
        );
        let with_overrides = compile_ok(
            ChannelType::Email,
            json!({"subject": "s", "html_body": "<p>b</p>", "text_body": "plain {{ recipient.name }}"}),
            Some(json!({"from_address": "{{ vars.app | downcase }}@x.test", "from_name": "", "cc_address": "cc@x.test"})),
        )
        .render(
            &default_globals(json!({})),
            &recipient(),
            &channel(ChannelType::Email, settings),
        )
        .expect("renders");
        assert_eq!(with_overrides["from"], "herald@x.test");
        assert_eq!(with_overrides["cc"], "cc@x.test");
        assert_eq!(with_overrides["text_body"], "plain Ada");
        assert!(with_overrides.get("bcc").is_none());
    }

    #[test]
    fn email_visual_blocks() {
        let out = render(
            ChannelType::Email,
            json!({"subject": "s", "visual_blocks": [
                {"type": "markdown", "content": "Hi **{{ recipient.name }}**"},
                {"type": "divider"},
                {"type": "html", "content": "<p>raw</p>"},
                {"type": "button_set", "buttons": [{"label": "Open", "action": "https://x.test/?a=1&b=2", "variant": "solid"}]},
                {"type": "image", "url": "https://x.test/i.png", "alt": "logo", "action": "https://x.test"},
            ]}),
            json!({"from_address": "a@x.test"}),
            json!({}),
        )
        .expect("renders");
        assert_eq!(
            out["html_body"],
            "<p>Hi <strong>Ada</strong></p>\n<hr /><p>raw</p><div class=\"buttons\">\
             <a class=\"button\" href=\"https://x.test/?a=1&amp;b=2\">Open</a></div>\
             <a href=\"https://x.test\"><img src=\"https://x.test/i.png\" alt=\"logo\" /></a>"
        );
        assert_eq!(out["from"], "a@x.test");
    }

    #[test]
    fn email_without_address_or_sender() {
        let t = compile_ok(
            ChannelType::Email,
            json!({"subject": "s", "html_body": "b"}),
            None,
        );
        let g = default_globals(json!({}));
        let chan = channel(ChannelType::Email, json!({"from_address": "a@x.test"}));
        assert_eq!(
            t.render(&g, &json!({"id": "u2"}), &chan),
            Err(RenderError::NoAddress("recipient has no email".into()))
        );
        let no_sender = channel(ChannelType::Email, json!({}));
        assert!(matches!(
            t.render(&g, &recipient(), &no_sender),
            Err(RenderError::Template(_))
        ));
    }

    #[test]
    fn sms_shape() {
        let out = render(
            ChannelType::Sms,
            json!({"text_body": "Code {{ code }}"}),
            json!({}),
            json!({"code": 1234}),
        );
        assert_eq!(out, Ok(json!({"to": "+15550001111", "body": "Code 1234"})));
        let t = compile_ok(
            ChannelType::Sms,
            json!({"text_body": "x", "settings": {"to_number": "{{ data.alt }}"}}),
            None,
        );
        let chan = channel(ChannelType::Sms, json!({}));
        let out = t.render(
            &default_globals(json!({"alt": "+1999"})),
            &json!({"id": "u"}),
            &chan,
        );
        assert_eq!(out, Ok(json!({"to": "+1999", "body": "x"})));
        let missing = t.render(&default_globals(json!({})), &json!({"id": "u"}), &chan);
        assert!(matches!(missing, Err(RenderError::NoAddress(_))));
    }

    #[test]
    fn push_shape() {
        let out = render(
            ChannelType::Push,
            json!({"title": "Hi {{ recipient.name }}", "text_body": "{{ n }} new",
                   "settings": {"delivery_type": "silent", "payload_overrides": "{\"n\": {{ n }}}"}}),
            json!({}),
            json!({"n": 3}),
        );
        assert_eq!(
            out,
            Ok(
                json!({"title": "Hi Ada", "body": "3 new", "delivery_type": "silent", "data": {"n": 3}})
            )
        );
        let plain = render(
            ChannelType::Push,
            json!({"title": "t", "text_body": "b"}),
            json!({}),
            json!({}),
        );
        assert_eq!(
            plain,
            Ok(json!({"title": "t", "body": "b", "delivery_type": "content"}))
        );
        let bad_json = render(
            ChannelType::Push,
            json!({"title": "t", "text_body": "b", "settings": {"payload_overrides": "{ nope"}}),
            json!({}),
            json!({}),
        );
        assert!(matches!(bad_json, Err(RenderError::Template(_))));
    }

    #[test]
    fn chat_shape() {
        let out = render(
            ChannelType::Chat,
            json!({"markdown_body": "*{{ actor.name }}* commented", "summary": "New comment",
                   "json_body": "{\"blocks\": [{\"type\": \"section\", \"text\": \"{{ comment }}\"}]}"}),
            json!({}),
            json!({"comment": "hey"}),
        );
        assert_eq!(
            out,
            Ok(
                json!({"markdown_body": "*Bob* commented", "summary": "New comment",
                      "json_content": {"blocks": [{"type": "section", "text": "hey"}]}})
            )
        );
    }

    #[test]
    fn in_app_feed_shape() {
        let out = render(
            ChannelType::InAppFeed,
            json!({"markdown_body": "**{{ actor.name }}** said {{ comment }}",
                   "action_url": "https://app.test/c/{{ id }}",
                   "action_buttons": [{"label": "Reply", "action": "/reply/{{ id }}"}, {"label": "Mute", "action": "/mute"}]}),
            json!({}),
            json!({"comment": "hi", "id": 7}),
        );
        assert_eq!(
            out,
            Ok(json!({
                "blocks": [
                    {"type": "markdown", "name": "body", "content": "**Bob** said hi",
                     "rendered": "<p><strong>Bob</strong> said hi</p>\n"},
                    {"type": "button_set", "name": "actions", "buttons": [
                        {"name": "primary", "label": "Reply", "action": "/reply/7"},
                        {"name": "secondary", "label": "Mute", "action": "/mute"},
                    ]},
                    {"type": "text", "name": "action_url", "content": "https://app.test/c/7",
                     "rendered": "https://app.test/c/7"},
                ],
                "action_url": "https://app.test/c/7",
            }))
        );
        let bare = render(
            ChannelType::InAppFeed,
            json!({"markdown_body": "x"}),
            json!({}),
            json!({}),
        )
        .expect("renders");
        assert_eq!(bare["blocks"].as_array().map(Vec::len), Some(1));
        assert!(bare.get("action_url").is_none());
    }

    #[test]
    fn http_shape() {
        let out = render(
            ChannelType::Http,
            json!({"method": "post", "url": "https://hooks.test/{{ recipient.id }}",
                   "headers": [{"key": "X-Event", "value": "{{ workflow.key }}"}],
                   "query_params": [{"key": "n", "value": "{{ n }}"}],
                   "body": "{\"n\": {{ n }}}"}),
            json!({}),
            json!({"n": 2}),
        );
        assert_eq!(
            out,
            Ok(json!({
                "method": "POST", "url": "https://hooks.test/u1",
                "headers": [{"key": "X-Event", "value": "new-comment"}],
                "query_params": [{"key": "n", "value": "2"}],
                "body": "{\"n\": 2}",
            }))
        );
    }

    #[test]
    fn compile_reports_every_problem_with_paths() {
        let mut problems = Vec::new();
        let t = json!({"subject": "{% if %}", "visual_blocks": [
            {"type": "markdown"}, {"type": "partial", "key": "x"}, {"type": "video"}, "x"
        ]});
        let o = json!({"from_address": 5});
        let out = StepTemplate::compile(
            ChannelType::Email,
            t.as_object().expect("object"),
            o.as_object(),
            "steps[3]",
            &mut problems,
        );
        assert!(out.is_none());
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "steps[3].template.subject",
                "steps[3].template.visual_blocks[0].content",
                "steps[3].template.visual_blocks[1].type",
                "steps[3].template.visual_blocks[2].type",
                "steps[3].template.visual_blocks[3]",
                "steps[3].channel_overrides.from_address",
            ]
        );
        assert!(problems[0].reason.starts_with("invalid Liquid"));

        let mut problems = Vec::new();
        let http = json!({"method": "fetch", "headers": [{"key": "a"}]});
        StepTemplate::compile(
            ChannelType::Http,
            http.as_object().expect("object"),
            None,
            "steps[0]",
            &mut problems,
        );
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "steps[0].template.method",
                "steps[0].template.url",
                "steps[0].template.headers[0].value",
            ]
        );
    }
}
