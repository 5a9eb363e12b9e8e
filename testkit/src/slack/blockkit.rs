//! Block Kit as Slack validates it for messages: known block and element
//! types, the required fields, and the length and count limits. Errors
//! read as Slack's do (`must be less than 151 characters
//! [json-pointer:/blocks/0/text/text]`), one per problem, so a refused
//! payload says exactly which piece broke which rule.
//!
//! Lengths are counted in characters, as Slack's documentation states
//! them. Types this checker knows but epicenter does not send (inputs,
//! selects, rich text) are accepted with their basic shape checked.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Slack's limits for message blocks.
pub mod limits {
    pub const BLOCKS: usize = 50;
    pub const BLOCK_ID: usize = 255;
    pub const ACTION_ID: usize = 255;
    pub const HEADER_TEXT: usize = 150;
    pub const SECTION_TEXT: usize = 3000;
    pub const FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2000;
    pub const CONTEXT_ELEMENTS: usize = 10;
    pub const TEXT_OBJECT: usize = 3000;
    pub const ACTIONS_ELEMENTS: usize = 25;
    pub const BUTTON_TEXT: usize = 75;
    pub const BUTTON_URL: usize = 3000;
    pub const BUTTON_VALUE: usize = 2000;
    pub const IMAGE_URL: usize = 3000;
    pub const ALT_TEXT: usize = 2000;
    pub const MARKDOWN_TEXT: usize = 12000;
}

const BLOCK_TYPES: [&str; 12] = [
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "table",
    "video",
];

/// Interactive elements (actions blocks, section accessories).
const ELEMENT_TYPES: [&str; 23] = [
    "button",
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "email_text_input",
    "external_select",
    "image",
    "multi_channels_select",
    "multi_conversations_select",
    "multi_external_select",
    "multi_static_select",
    "multi_users_select",
    "number_input",
    "overflow",
    "plain_text_input",
    "radio_buttons",
    "rich_text_input",
    "static_select",
    "channels_select",
    "conversations_select",
    "users_select",
    "timepicker",
    "url_text_input",
];

/// Problems with `blocks` as message blocks; empty when Slack would take
/// them. `blocks` is the value of the `blocks` argument.
pub fn validate(blocks: &Value) -> Vec<String> {
    let mut v = Validator::default();
    let Some(list) = blocks.as_array() else {
        v.err("/blocks", "must provide an array");
        return v.errors;
    };
    if list.len() > limits::BLOCKS {
        v.err(
            "/blocks",
            &format!("no more than {} items allowed", limits::BLOCKS),
        );
    }
    for (i, block) in list.iter().enumerate() {
        v.block(block, &format!("/blocks/{i}"));
    }
    v.errors
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// What Slack takes as a link target.
pub fn is_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty()) && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[derive(Default)]
struct Validator {
    errors: Vec<String>,
    block_ids: HashSet<String>,
    action_ids: HashSet<String>,
}

impl Validator {
    fn err(&mut self, pointer: &str, message: &str) {
        self.errors
            .push(format!("{message} [json-pointer:{pointer}]"));
    }

    fn object<'a>(&mut self, v: &'a Value, at: &str) -> Option<&'a Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.err(at, "must provide an object");
        }
        o
    }

    fn string<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        key: &str,
        at: &str,
        max: usize,
        required: bool,
    ) -> Option<&'a str> {
        let at = format!("{at}/{key}");
        match o.get(key) {
            None if required => {
                self.err(&at, "must provide a string");
                None
            }
            None => None,
            Some(Value::String(s)) => {
                if s.is_empty() {
                    self.err(&at, "must be more than 0 characters");
                } else if chars(s) > max {
                    self.err(&at, &format!("must be less than {} characters", max + 1));
                }
                Some(s)
            }
            Some(_) => {
                self.err(&at, "must be a string");
                None
            }
        }
    }

    fn block(&mut self, block: &Value, at: &str) {
        let Some(o) = self.object(block, at) else {
            return;
        };
        let Some(kind) = self.string(o, "type", at, 50, true) else {
            return;
        };
        if !BLOCK_TYPES.contains(&kind) {
            self.err(&format!("{at}/type"), &format!("unsupported type: {kind}"));
            return;
        }
        if let Some(id) = self.string(o, "block_id", at, limits::BLOCK_ID, false)
            && !self.block_ids.insert(id.to_string())
        {
            self.err(&format!("{at}/block_id"), "block_id already exists");
        }
        match kind {
            "header" => self.text_object(
                o.get("text"),
                &format!("{at}/text"),
                limits::HEADER_TEXT,
                true,
            ),
            "section" => self.section(o, at),
            "context" => self.context(o, at),
            "actions" => self.actions(o, at),
            "divider" => {}
            "image" => self.image(o, at),
            "markdown" => {
                self.string(o, "text", at, limits::MARKDOWN_TEXT, true);
            }
            _ => {}
        }
    }

    /// A text object: `{type: plain_text|mrkdwn, text}`; `plain_only` for
    /// the places that take plain text only (headers, buttons).
    fn text_object(&mut self, v: Option<&Value>, at: &str, max: usize, plain_only: bool) {
        let Some(v) = v else {
            self.err(at, "must provide an object");
            return;
        };
        let Some(o) = self.object(v, at) else {
            return;
        };
        match o.get("type").and_then(Value::as_str) {
            Some("plain_text") => {}
            Some("mrkdwn") if !plain_only => {
                if o.contains_key("emoji") {
                    self.err(&format!("{at}/emoji"), "emoji is only valid for plain_text");
                }
            }
            Some("mrkdwn") => self.err(&format!("{at}/type"), "must be plain_text"),
            _ => self.err(&format!("{at}/type"), "must be one of plain_text, mrkdwn"),
        }
        self.string(o, "text", at, max, true);
    }

    fn section(&mut self, o: &Map<String, Value>, at: &str) {
        let text = o.get("text");
        let fields = o.get("fields");
        if text.is_none() && fields.is_none() {
            self.err(at, "must provide text or fields");
        }
        if text.is_some() {
            self.text_object(text, &format!("{at}/text"), limits::SECTION_TEXT, false);
        }
        if let Some(fields) = fields {
            let at = format!("{at}/fields");
            match fields.as_array() {
                None => self.err(&at, "must provide an array"),
                Some(list) => {
                    if list.is_empty() {
                        self.err(&at, "must provide at least 1 item");
                    }
                    if list.len() > limits::FIELDS {
                        self.err(
                            &at,
                            &format!("no more than {} items allowed", limits::FIELDS),
                        );
                    }
                    for (i, f) in list.iter().enumerate() {
                        self.text_object(Some(f), &format!("{at}/{i}"), limits::FIELD_TEXT, false);
                    }
                }
            }
        }
        if let Some(accessory) = o.get("accessory") {
            self.element(accessory, &format!("{at}/accessory"));
        }
    }

    fn context(&mut self, o: &Map<String, Value>, at: &str) {
        let at = format!("{at}/elements");
        let Some(list) = o.get("elements").and_then(Value::as_array) else {
            self.err(&at, "must provide an array");
            return;
        };
        if list.is_empty() {
            self.err(&at, "must provide at least 1 item");
        }
        if list.len() > limits::CONTEXT_ELEMENTS {
            self.err(
                &at,
                &format!("no more than {} items allowed", limits::CONTEXT_ELEMENTS),
            );
        }
        for (i, e) in list.iter().enumerate() {
            let at = format!("{at}/{i}");
            match e.get("type").and_then(Value::as_str) {
                Some("image") => {
                    if let Some(o) = self.object(e, &at) {
                        self.image(o, &at);
                    }
                }
                _ => self.text_object(Some(e), &at, limits::TEXT_OBJECT, false),
            }
        }
    }

    fn actions(&mut self, o: &Map<String, Value>, at: &str) {
        let at = format!("{at}/elements");
        let Some(list) = o.get("elements").and_then(Value::as_array) else {
            self.err(&at, "must provide an array");
            return;
        };
        if list.is_empty() {
            self.err(&at, "must provide at least 1 item");
        }
        if list.len() > limits::ACTIONS_ELEMENTS {
            self.err(
                &at,
                &format!("no more than {} items allowed", limits::ACTIONS_ELEMENTS),
            );
        }
        for (i, e) in list.iter().enumerate() {
            self.element(e, &format!("{at}/{i}"));
        }
    }

    fn element(&mut self, e: &Value, at: &str) {
        let Some(o) = self.object(e, at) else {
            return;
        };
        let Some(kind) = self.string(o, "type", at, 50, true) else {
            return;
        };
        if !ELEMENT_TYPES.contains(&kind) {
            self.err(&format!("{at}/type"), &format!("unsupported type: {kind}"));
            return;
        }
        if let Some(id) = self.string(o, "action_id", at, limits::ACTION_ID, false)
            && !self.action_ids.insert(id.to_string())
        {
            self.err(&format!("{at}/action_id"), "action_id already exists");
        }
        match kind {
            "button" => {
                self.text_object(
                    o.get("text"),
                    &format!("{at}/text"),
                    limits::BUTTON_TEXT,
                    true,
                );
                if let Some(url) = self.string(o, "url", at, limits::BUTTON_URL, false)
                    && !is_url(url)
                {
                    self.err(&format!("{at}/url"), "must be a valid url");
                }
                self.string(o, "value", at, limits::BUTTON_VALUE, false);
                if let Some(style) = o.get("style")
                    && !matches!(style.as_str(), Some("primary" | "danger"))
                {
                    self.err(&format!("{at}/style"), "must be one of primary, danger");
                }
            }
            "image" => self.image(o, at),
            _ => {}
        }
    }

    fn image(&mut self, o: &Map<String, Value>, at: &str) {
        self.string(o, "alt_text", at, limits::ALT_TEXT, true);
        match o.get("image_url") {
            Some(_) => {
                if let Some(url) = self.string(o, "image_url", at, limits::IMAGE_URL, true)
                    && !is_url(url)
                {
                    self.err(&format!("{at}/image_url"), "must be a valid url");
                }
            }
            None if o.contains_key("slack_file") => {}
            None => self.err(at, "must provide image_url or slack_file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn good_blocks_pass() {
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "Title", "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"},
             "fields": [{"type": "mrkdwn", "text": "a"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "x"},
                {"type": "image", "image_url": "https://x.io/a.png", "alt_text": "a"}]},
            {"type": "divider"},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Go"},
                "url": "https://example.com", "action_id": "a1"}]},
        ]);
        assert_eq!(validate(&blocks), Vec::<String>::new());
    }

    #[test]
    fn each_limit_is_checked_with_its_pointer() {
        let cases = [
            (
                json!([{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]),
                "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
            ),
            (
                json!([{"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(3001)}}]),
                "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
            ),
            (
                json!([{"type": "section", "fields": vec![json!({"type": "mrkdwn", "text": "f"}); 11]}]),
                "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
            ),
            (
                json!([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f".repeat(2001)}]}]),
                "must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]",
            ),
            (
                json!([{"type": "context", "elements": vec![json!({"type": "mrkdwn", "text": "c"}); 11]}]),
                "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
            ),
            (
                json!([{"type": "actions", "elements": [{"type": "button",
                    "text": {"type": "plain_text", "text": "b".repeat(76)}}]}]),
                "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
            ),
            (
                json!([{"type": "actions", "elements": [{"type": "button",
                    "text": {"type": "plain_text", "text": "b"}, "url": format!("https://{}", "u".repeat(3000))}]}]),
                "must be less than 3001 characters [json-pointer:/blocks/0/elements/0/url]",
            ),
            (
                json!([{"type": "actions", "elements": (0..26).map(|i| json!({"type": "button",
                    "text": {"type": "plain_text", "text": "b"}, "action_id": format!("a{i}")})).collect::<Vec<_>>()}]),
                "no more than 25 items allowed [json-pointer:/blocks/0/elements]",
            ),
            (
                Value::Array(vec![json!({"type": "divider"}); 51]),
                "no more than 50 items allowed [json-pointer:/blocks]",
            ),
            (
                json!([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]),
                "must be more than 0 characters [json-pointer:/blocks/0/text/text]",
            ),
            (
                json!([{"type": "banner"}]),
                "unsupported type: banner [json-pointer:/blocks/0/type]",
            ),
            (
                json!([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]),
                "must be plain_text [json-pointer:/blocks/0/text/type]",
            ),
            (
                json!([{"type": "actions", "elements": [{"type": "button",
                    "text": {"type": "plain_text", "text": "b"}, "url": "javascript:x"}]}]),
                "must be a valid url [json-pointer:/blocks/0/elements/0/url]",
            ),
            (
                json!([{"type": "actions", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "b"}, "action_id": "x"},
                    {"type": "button", "text": {"type": "plain_text", "text": "c"}, "action_id": "x"}]}]),
                "action_id already exists [json-pointer:/blocks/0/elements/1/action_id]",
            ),
        ];
        for (blocks, expected) in cases {
            let errs = validate(&blocks);
            assert!(
                errs.iter().any(|e| e == expected),
                "{expected}: got {errs:?}"
            );
        }
    }
}
