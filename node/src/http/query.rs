//! Query-string parsing for every encoding Knock's clients send (knock-api.md §1):
//!
//! ```text
//! key=v                 -> {"key": "v"}
//! key[]=a&key[]=b       -> {"key": ["a", "b"]}          (Python, Node)
//! key[sub]=v            -> {"key": {"sub": "v"}}         (Python, Node)
//! key.sub=v             -> {"key": {"sub": "v"}}         (OpenAPI, browser client)
//! objects[0][id]=x      -> {"objects": {"0": {"id": "x"}}} read back as a list by `object_list`
//! ```
//!
//! Values are percent-decoded (`+` is a space). Conflicting shapes (`a=1&a[b]=2`) and indexed
//! primitive lists (`include[0]=x`, which Knock refuses too) are 422 `invalid_params`. Unknown
//! parameters are kept and simply never read.

use serde_json::{Map, Value};

use super::error::{invalid, ApiResult};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueryParams {
    root: Map<String, Value>,
}

fn percent_decode(s: &str) -> ApiResult<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| invalid("malformed percent-encoding in the query string"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| invalid("query string is not valid UTF-8"))
}

/// `a[b][]` -> ["a", "b", ""]; `a.b` -> ["a", "b"] (dot form only without brackets).
fn split_key(key: &str) -> ApiResult<Vec<String>> {
    let bad = || invalid(format!("malformed query parameter name `{key}`"));
    let Some(open) = key.find('[') else {
        let parts: Vec<String> = key.split('.').map(str::to_owned).collect();
        if parts.iter().any(String::is_empty) {
            return Err(bad());
        }
        return Ok(parts);
    };
    let mut parts = vec![key[..open].to_owned()];
    if parts[0].is_empty() {
        return Err(bad());
    }
    let mut rest = &key[open..];
    while !rest.is_empty() {
        let inner_end = rest
            .strip_prefix('[')
            .and_then(|r| r.find(']'))
            .ok_or_else(bad)?;
        parts.push(rest[1..=inner_end].to_owned());
        rest = &rest[inner_end + 2..];
    }
    // `[]` may only be last: `a[][b]` (Rails style) is not something Knock's clients send.
    if parts[..parts.len() - 1]
        .iter()
        .skip(1)
        .any(String::is_empty)
    {
        return Err(bad());
    }
    Ok(parts)
}

fn insert(
    node: &mut Map<String, Value>,
    path: &[String],
    value: String,
    key: &str,
) -> ApiResult<()> {
    let conflict = || {
        invalid(format!(
            "query parameter `{key}` conflicts with another parameter"
        ))
    };
    let (head, tail) = (&path[0], &path[1..]);
    match tail {
        [] => match node.get_mut(head) {
            None => {
                node.insert(head.clone(), Value::String(value));
            }
            // A repeated plain key keeps the last value, like most web frameworks.
            Some(Value::String(s)) => *s = value,
            Some(_) => return Err(conflict()),
        },
        [last] if last.is_empty() => match node
            .entry(head.clone())
            .or_insert_with(|| Value::Array(vec![]))
        {
            Value::Array(a) => a.push(Value::String(value)),
            _ => return Err(conflict()),
        },
        _ => match node
            .entry(head.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(m) => insert(m, tail, value, key)?,
            _ => return Err(conflict()),
        },
    }
    Ok(())
}

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let mut root = Map::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k)?;
            let value = percent_decode(v)?;
            let path = split_key(&key)?;
            insert(&mut root, &path, value, &key)?;
        }
        Ok(QueryParams { root })
    }

    /// A single string parameter.
    pub fn string(&self, key: &str) -> ApiResult<Option<&str>> {
        match self.root.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(format!("`{key}` must be a single value"))),
        }
    }

    /// A list of strings: `key[]=a&key[]=b`, or a single `key=a`.
    pub fn list(&self, key: &str) -> ApiResult<Vec<String>> {
        match self.root.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => Ok(a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()),
            Some(Value::Object(_)) => {
                Err(invalid(format!("`{key}` must be a list (`{key}[]=...`)")))
            }
            Some(_) => Err(invalid(format!("`{key}` must be a list"))),
        }
    }

    /// A nested object (`key[sub]=v` or `key.sub=v`).
    pub fn object(&self, key: &str) -> ApiResult<Option<&Map<String, Value>>> {
        match self.root.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(invalid(format!(
                "`{key}` must be an object (`{key}[field]=...`)"
            ))),
        }
    }

    /// `true` or `false`.
    pub fn boolean(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.string(key)? {
            None | Some("") => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(invalid(format!("`{key}` must be `true` or `false`"))),
        }
    }

    /// A parameter whatever its shape (for parameters that take a string or an object).
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.root.get(key)
    }

    /// A list of objects sent indexed (`key[0][id]=a&key[1][id]=b`), in index order.
    pub fn object_list(&self, key: &str) -> ApiResult<Vec<Map<String, Value>>> {
        let Some(m) = self.object(key)? else {
            return Ok(Vec::new());
        };
        let mut items = Vec::with_capacity(m.len());
        for (idx, v) in m {
            let n: usize = idx
                .parse()
                .map_err(|_| invalid(format!("`{key}` must be indexed with numbers")))?;
            let Value::Object(o) = v else {
                return Err(invalid(format!("`{key}[{idx}]` must be an object")));
            };
            items.push((n, o.clone()));
        }
        items.sort_by_key(|(n, _)| *n);
        Ok(items.into_iter().map(|(_, o)| o).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(q: &str) -> Value {
        Value::Object(QueryParams::parse(Some(q)).unwrap().root)
    }

    #[test]
    fn every_encoding() {
        assert_eq!(
            parse(
                "include[]=preferences&include[]=x&inserted_at[gte]=2024&after=a%20b+c&order=desc"
            ),
            json!({"include": ["preferences", "x"], "inserted_at": {"gte": "2024"}, "after": "a b c", "order": "desc"})
        );
        assert_eq!(
            parse("inserted_at.gte=1&inserted_at.lt=2"),
            json!({"inserted_at": {"gte": "1", "lt": "2"}})
        );
        assert_eq!(
            parse("objects%5B1%5D%5Bid%5D=b&objects[0][id]=a&objects[0][collection]=c"),
            json!({"objects": {"1": {"id": "b"}, "0": {"id": "a", "collection": "c"}}})
        );
        let q = QueryParams::parse(Some("objects[1][id]=b&objects[0][id]=a&t=x&tenant_ids[]=1"))
            .unwrap();
        let ids: Vec<_> = q
            .object_list("objects")
            .unwrap()
            .into_iter()
            .map(|o| o["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!("a"), json!("b")]);
        assert_eq!(q.list("t").unwrap(), vec!["x"]);
        assert_eq!(q.list("tenant_ids").unwrap(), vec!["1"]);
        assert_eq!(parse(""), json!({}));
        assert_eq!(parse("flag"), json!({"flag": ""}));
    }

    #[test]
    fn rejects_conflicts_and_garbage() {
        for q in [
            "a=1&a[b]=2",
            "a[b]=1&a=2",
            "a[=1",
            "[x]=1",
            "a%zz=1",
            "a=%ff",
            "a..b=1",
            "a[][b]=1",
        ] {
            assert!(QueryParams::parse(Some(q)).is_err(), "{q}");
        }
        let q = QueryParams::parse(Some("include[0]=preferences")).unwrap();
        assert!(
            q.list("include").is_err(),
            "indexed primitives are refused, as Knock does"
        );
        let q = QueryParams::parse(Some("page_size[]=1")).unwrap();
        assert!(q.string("page_size").is_err());
    }
}
