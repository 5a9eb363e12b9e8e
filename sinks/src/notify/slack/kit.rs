//! Block Kit pieces that always fit.
//!
//! Slack refuses a whole message (`invalid_blocks`, `msg_too_long`) when a
//! single piece is over a limit, and the size of an incident is not ours to
//! choose: a summary can run to pages, a blast radius to thousands of pods.
//! So every block is built here, through [`Blocks`], which escapes what it
//! is given where Slack parses mrkdwn and cuts every piece to its limit:
//! a message that is too big loses detail, never the delivery. The limits
//! are named once, in [`limits`], and counted in characters as Slack's
//! documentation counts them.

use serde_json::{Value, json};

use crate::notify::Link;

/// Slack's limits for a message's blocks (characters and counts).
pub mod limits {
    /// Blocks in one message.
    pub const BLOCKS: usize = 50;
    /// The `text` of a section block.
    pub const SECTION_TEXT: usize = 3000;
    /// The plain text of a header block.
    pub const HEADER_TEXT: usize = 150;
    /// Fields in one section block.
    pub const FIELDS: usize = 10;
    /// The text of one field.
    pub const FIELD_TEXT: usize = 2000;
    /// Elements in one context block.
    pub const CONTEXT_ELEMENTS: usize = 10;
    /// The text of one context element (a text object).
    pub const CONTEXT_TEXT: usize = 3000;
    /// Elements in one actions block.
    pub const ACTIONS_ELEMENTS: usize = 25;
    /// The plain text of a button.
    pub const BUTTON_TEXT: usize = 75;
    /// The URL of a button.
    pub const BUTTON_URL: usize = 3000;
    /// A message's top-level `text`: Slack truncates beyond 40,000 and
    /// advises at most 4,000.
    pub const MESSAGE_TEXT: usize = 4000;
}

/// `&`, `<` and `>` as Slack's mrkdwn wants them (`&amp;`, `&lt;`, `&gt;`):
/// otherwise `<!channel>` in a log line would ping a channel and `<a|b>`
/// would turn into a link.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as inline code, escaped, on one line and at most `max` characters
/// of it: a backtick inside would end the span, so it becomes `'`.
pub fn code(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect();
    format!("`{}`", escape(&cut(&flat, max)))
}

/// At most `max` characters of plain text, with `…` at the end if cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..end])
        }
    }
}

/// At most `max` characters of mrkdwn, with `…` if cut, never ending inside
/// an entity (`&am`) or a `<...>` token (a date, a mention), and closing an
/// inline code span the cut left open.
pub fn cut_mrkdwn(s: &str, max: usize) -> String {
    if s.char_indices().nth(max).is_none() {
        return s.to_string();
    }
    // Room for `…` and a closing backtick.
    let keep = max.saturating_sub(2);
    let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    let mut head = &s[..end];
    if let Some(lt) = head.rfind('<')
        && !head[lt..].contains('>')
    {
        head = &head[..lt];
    }
    if let Some(amp) = head.rfind('&')
        && !head[amp..].contains(';')
    {
        head = &head[..amp];
    }
    let open_code = head.matches('`').count() % 2 == 1;
    let mut out = String::with_capacity(head.len() + 4);
    out.push_str(head);
    out.push('…');
    if open_code {
        out.push('`');
    }
    out
}

fn plain_text(text: &str, max: usize) -> Value {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    json!({"type": "plain_text", "text": cut(trimmed, max), "emoji": true})
}

fn mrkdwn(text: &str, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": cut_mrkdwn(text, max)})
}

/// Whether Slack takes `url` for a button: http(s), no whitespace, within
/// the limit. A URL cannot be cut to fit, so one that does not is left out.
pub fn is_button_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && url.chars().count() <= limits::BUTTON_URL
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A message's blocks, each within its limits, in the order added.
#[derive(Debug, Default)]
pub struct Blocks {
    blocks: Vec<Value>,
    buttons: usize,
}

impl Blocks {
    pub fn new() -> Blocks {
        Blocks::default()
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// A header: plain text (emoji shortcodes work), on one line. An empty
    /// one is left out (Slack refuses empty texts).
    pub fn header(&mut self, text: &str) -> &mut Blocks {
        if !text.trim().is_empty() {
            self.blocks.push(json!({
                "type": "header",
                "text": plain_text(text, limits::HEADER_TEXT),
            }));
        }
        self
    }

    /// A section of mrkdwn (already escaped where it holds user text).
    pub fn section(&mut self, text: &str) -> &mut Blocks {
        if !text.trim().is_empty() {
            self.blocks.push(json!({
                "type": "section",
                "text": mrkdwn(text, limits::SECTION_TEXT),
            }));
        }
        self
    }

    /// A section of fields (two columns): beyond [`limits::FIELDS`], the
    /// last field says how many more there are.
    pub fn fields(&mut self, fields: &[String]) -> &mut Blocks {
        let fields: Vec<&String> = fields.iter().filter(|f| !f.trim().is_empty()).collect();
        if fields.is_empty() {
            return self;
        }
        let mut out: Vec<Value> = Vec::with_capacity(fields.len().min(limits::FIELDS));
        if fields.len() > limits::FIELDS {
            let shown = limits::FIELDS - 1;
            out.extend(
                fields[..shown]
                    .iter()
                    .map(|f| mrkdwn(f, limits::FIELD_TEXT)),
            );
            out.push(mrkdwn(
                &format!("_and {} more_", fields.len() - shown),
                limits::FIELD_TEXT,
            ));
        } else {
            out.extend(fields.iter().map(|f| mrkdwn(f, limits::FIELD_TEXT)));
        }
        self.blocks.push(json!({"type": "section", "fields": out}));
        self
    }

    /// A context line of small mrkdwn elements: beyond
    /// [`limits::CONTEXT_ELEMENTS`], the last element carries the rest.
    pub fn context(&mut self, elements: &[String]) -> &mut Blocks {
        let elements: Vec<&String> = elements.iter().filter(|e| !e.trim().is_empty()).collect();
        if elements.is_empty() {
            return self;
        }
        let mut out: Vec<Value> = Vec::with_capacity(elements.len().min(limits::CONTEXT_ELEMENTS));
        let direct = if elements.len() <= limits::CONTEXT_ELEMENTS {
            elements.len()
        } else {
            limits::CONTEXT_ELEMENTS - 1
        };
        out.extend(
            elements[..direct]
                .iter()
                .map(|e| mrkdwn(e, limits::CONTEXT_TEXT)),
        );
        if direct < elements.len() {
            let rest: Vec<&str> = elements[direct..].iter().map(|e| e.as_str()).collect();
            out.push(mrkdwn(&rest.join(" · "), limits::CONTEXT_TEXT));
        }
        self.blocks
            .push(json!({"type": "context", "elements": out}));
        self
    }

    pub fn divider(&mut self) -> &mut Blocks {
        self.blocks.push(json!({"type": "divider"}));
        self
    }

    /// The links as buttons, at most [`limits::ACTIONS_ELEMENTS`]; links
    /// Slack would refuse (not http(s), too long) or beyond the limit are
    /// left out and counted in a context line.
    pub fn buttons(&mut self, links: &[Link]) -> &mut Blocks {
        let mut elements = Vec::new();
        let mut left_out = 0usize;
        for link in links {
            let url = link.url.trim();
            if !is_button_url(url) || elements.len() == limits::ACTIONS_ELEMENTS {
                left_out += 1;
                continue;
            }
            let title = if link.title.trim().is_empty() {
                url
            } else {
                link.title.as_str()
            };
            self.buttons += 1;
            elements.push(json!({
                "type": "button",
                "text": plain_text(title, limits::BUTTON_TEXT),
                "url": url,
                "action_id": format!("epicenter-link-{}", self.buttons),
            }));
        }
        if !elements.is_empty() {
            self.blocks
                .push(json!({"type": "actions", "elements": elements}));
        }
        if left_out > 0 {
            let s = if left_out == 1 { "" } else { "s" };
            self.context(&[format!("_{left_out} link{s} not shown_")]);
        }
        self
    }

    /// The blocks, at most [`limits::BLOCKS`]: beyond it the last ones give
    /// way to a line saying how many were left out.
    pub fn finish(self) -> Vec<Value> {
        let mut blocks = self.blocks;
        if blocks.len() > limits::BLOCKS {
            let dropped = blocks.len() - (limits::BLOCKS - 1);
            blocks.truncate(limits::BLOCKS - 1);
            blocks.push(json!({
                "type": "context",
                "elements": [mrkdwn(&format!("_{dropped} more blocks not shown_"), limits::CONTEXT_TEXT)],
            }));
        }
        blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(v: &Value) -> usize {
        v.as_str().map_or(0, |s| s.chars().count())
    }

    #[test]
    fn escaping_neutralises_mentions_and_links() {
        assert_eq!(
            escape("a & b <!channel> <http://x|y>"),
            "a &amp; b &lt;!channel&gt; &lt;http://x|y&gt;"
        );
        assert_eq!(code("a`b\nc<", 100), "`a'b c&lt;`");
    }

    #[test]
    fn plain_cut_counts_characters_and_marks_the_cut() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("exactly10!", 10), "exactly10!");
        let c = cut("ééééééééééé", 5);
        assert_eq!(c, "éééé…");
        assert_eq!(c.chars().count(), 5);
    }

    #[test]
    fn mrkdwn_cut_never_splits_an_entity_or_a_token() {
        let s = format!("{}&amp;tail", "x".repeat(10));
        let c = cut_mrkdwn(&s, 14);
        assert!(c.chars().count() <= 14, "{c}");
        assert!(c.ends_with("x…"), "{c}");
        let s = format!("{}<!date^1^{{date}}|fallback> more", "y".repeat(5));
        let c = cut_mrkdwn(&s, 12);
        assert!(!c.contains('<'), "{c}");
        let c = cut_mrkdwn("`abcdefghijklmnop`", 8);
        assert_eq!(c.matches('`').count() % 2, 0, "{c}");
        assert!(c.chars().count() <= 8, "{c}");
    }

    #[test]
    fn header_is_cut_to_its_limit() {
        let mut b = Blocks::new();
        b.header(&"h".repeat(1000));
        let blocks = b.finish();
        let n = chars(&blocks[0]["text"]["text"]);
        assert_eq!(n, limits::HEADER_TEXT);
    }

    #[test]
    fn section_text_is_cut_to_its_limit() {
        let mut b = Blocks::new();
        b.section(&escape(&"<&>".repeat(5000)));
        let blocks = b.finish();
        let text = blocks[0]["text"]["text"].as_str().expect("text");
        assert!(text.chars().count() <= limits::SECTION_TEXT);
        assert!(text.ends_with('…'));
        assert!(text.chars().count() > limits::SECTION_TEXT - 10);
    }

    #[test]
    fn fields_are_at_most_ten_each_within_limit() {
        let fields: Vec<String> = (0..25)
            .map(|i| format!("{i}{}", "f".repeat(3000)))
            .collect();
        let mut b = Blocks::new();
        b.fields(&fields);
        let blocks = b.finish();
        let out = blocks[0]["fields"].as_array().expect("fields");
        assert_eq!(out.len(), limits::FIELDS);
        assert!(out.iter().all(|f| chars(&f["text"]) <= limits::FIELD_TEXT));
        assert_eq!(out[9]["text"], "_and 16 more_");
    }

    #[test]
    fn context_is_at_most_ten_elements() {
        for n in [9usize, 10, 11, 40] {
            let elements: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
            let mut b = Blocks::new();
            b.context(&elements);
            let blocks = b.finish();
            let out = blocks[0]["elements"].as_array().expect("elements");
            assert_eq!(out.len(), n.min(limits::CONTEXT_ELEMENTS), "{n}");
            let all: String = out
                .iter()
                .map(|e| e["text"].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" · ");
            assert!(
                all.contains(&format!("e{}", n - 1)),
                "{n}: nothing lost: {all}"
            );
        }
    }

    #[test]
    fn buttons_respect_text_url_and_count_limits() {
        let mut links: Vec<Link> = (0..40)
            .map(|i| Link {
                title: format!("{i} {}", "t".repeat(200)),
                url: format!("https://example.com/{i}"),
            })
            .collect();
        links.push(Link {
            title: "too long".into(),
            url: format!("https://example.com/{}", "u".repeat(3000)),
        });
        links.insert(
            0,
            Link {
                title: "not a url".into(),
                url: "javascript:alert(1)".into(),
            },
        );
        let mut b = Blocks::new();
        b.buttons(&links);
        let blocks = b.finish();
        let buttons = blocks[0]["elements"].as_array().expect("elements");
        assert_eq!(buttons.len(), limits::ACTIONS_ELEMENTS);
        for button in buttons {
            assert!(chars(&button["text"]["text"]) <= limits::BUTTON_TEXT);
            assert!(chars(&button["url"]) <= limits::BUTTON_URL);
        }
        assert_eq!(blocks[1]["elements"][0]["text"], "_17 links not shown_");
        let ids: std::collections::HashSet<&str> = buttons
            .iter()
            .filter_map(|b| b["action_id"].as_str())
            .collect();
        assert_eq!(ids.len(), buttons.len(), "action ids are unique");
    }

    #[test]
    fn at_most_fifty_blocks() {
        let mut b = Blocks::new();
        for i in 0..120 {
            b.section(&format!("s{i}"));
        }
        let blocks = b.finish();
        assert_eq!(blocks.len(), limits::BLOCKS);
        assert_eq!(
            blocks[49]["elements"][0]["text"],
            "_71 more blocks not shown_"
        );
    }

    #[test]
    fn empty_texts_are_left_out() {
        let mut b = Blocks::new();
        b.header("  ")
            .section("")
            .fields(&[String::new()])
            .context(&[" ".into()]);
        assert!(b.is_empty());
    }
}
