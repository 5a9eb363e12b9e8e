//! Title and summary templates: text with `{name}` placeholders, parsed once
//! at load time so a misspelt placeholder is a load error, not a blank title.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A parsed template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Part {
    Text(String),
    Var(String),
}

impl Template {
    /// Parses `text`; `{{` and `}}` stand for literal braces.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                                name.push(c)
                            }
                            Some(c) => {
                                return Err(format!(
                                    "unexpected {c:?} in placeholder {{{name}: names are letters, digits, '_' and '.'"
                                ));
                            }
                            None => return Err(format!("unclosed placeholder {{{name}")),
                        }
                    }
                    if name.is_empty() {
                        return Err("empty placeholder {}".to_string());
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(name));
                }
                '}' => return Err("unmatched '}' (write '}}' for a literal brace)".to_string()),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// The placeholder names, in order.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Text(_) => None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Renders with `lookup`; an unknown value renders as `?`.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<std::borrow::Cow<'a, str>>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => match lookup(v) {
                    Some(value) => out.push_str(&value),
                    None => {
                        let _ = write!(out, "?");
                    }
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn renders_placeholders_and_escaped_braces() {
        let t = Template::parse("{driver} down on {{node}} ({count})").expect("valid");
        assert_eq!(t.vars().collect::<Vec<_>>(), ["driver", "count"]);
        let s = t.render(|v| match v {
            "driver" => Some(Cow::Borrowed("nfs")),
            _ => None,
        });
        assert_eq!(s, "nfs down on {node} (?)");
    }

    #[test]
    fn rejects_broken_templates() {
        assert!(Template::parse("{open").is_err());
        assert!(Template::parse("a } b").is_err());
        assert!(Template::parse("{bad name}").is_err());
        assert!(Template::parse("{}").is_err());
    }
}
