//! Bounds on a configuration's size and nesting, checked before the YAML parser sees the text.
//!
//! libyaml and serde_yaml_ng take time that grows much faster than the text with nesting: a
//! 200 KB line of `xen: [[[[…` took 44 s to be rejected (debug build), `{a: {a: …` 23 s. No real
//! configuration nests more than a handful of levels, so a cheap scan that over-estimates the
//! depth a little and refuses anything past [`MAX_DEPTH`] keeps every load well under a second.

/// Deeper than any configuration the exporter reads (it nests four or five levels).
pub const MAX_DEPTH: usize = 64;

/// Larger than any real configuration (2 MiB is ~25,000 probe targets written one a line), small
/// enough that even a debug build parses it in about a second.
pub const MAX_BYTES: u64 = 2 * 1024 * 1024;

/// Where the text first nests deeper than [`MAX_DEPTH`]; line and column are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// Scans YAML text for its nesting depth without parsing it: block nesting from indentation and
/// the `- `, `? `, `: ` indicators, flow nesting from `[`/`{`. Quoted scalars, comments and block
/// scalars (`|`, `>`) are skipped, so brackets inside them do not count. The estimate may exceed
/// the true depth by one a line (a scalar after `key: ` counts as a level), never fall below it.
pub fn check_depth(text: &str) -> Result<(), TooDeep> {
    let mut scan = Scan::default();
    for (index, line) in text.lines().enumerate() {
        scan.line(line, index + 1)?;
    }
    Ok(())
}

/// What carries over from one line to the next.
#[derive(Default)]
struct Scan {
    /// Columns of the block nodes that enclose the current position.
    block: Vec<usize>,
    /// Open `[` and `{`.
    flow: usize,
    /// Inside a quoted scalar that continues on the next line: its quote character.
    quote: Option<char>,
    /// Inside a block scalar: lines indented more than this are its text.
    block_scalar_parent: Option<usize>,
}

impl Scan {
    fn line(&mut self, line: &str, number: usize) -> Result<(), TooDeep> {
        let chars: Vec<char> = line.chars().collect();
        let indent = chars.iter().take_while(|&&c| c == ' ').count();
        let blank =
            chars[indent..].iter().all(|c| c.is_whitespace()) || chars.get(indent) == Some(&'#');
        if let Some(parent) = self.block_scalar_parent {
            if blank || indent > parent {
                return Ok(());
            }
            self.block_scalar_parent = None;
        }
        if blank && self.quote.is_none() {
            return Ok(());
        }
        let mut at = 0;
        let mut node_start = true;
        if self.quote.is_none() {
            at = indent;
            if self.flow == 0 {
                while self.block.last().is_some_and(|&column| column >= indent) {
                    self.block.pop();
                }
            }
        }
        let too_deep = |column: usize| TooDeep {
            line: number,
            column: column + 1,
        };
        while at < chars.len() {
            if let Some(quote) = self.quote {
                // Inside a quoted scalar: find its end ('' and \" do not end it).
                match chars[at] {
                    '\\' if quote == '"' => at += 1,
                    c if c == quote => {
                        if quote == '\'' && chars.get(at + 1) == Some(&'\'') {
                            at += 1;
                        } else {
                            self.quote = None;
                            node_start = false;
                        }
                    }
                    _ => {}
                }
                at += 1;
                continue;
            }
            let c = chars[at];
            let next_blank = chars.get(at + 1).is_none_or(|c| c.is_whitespace());
            match c {
                ' ' | '\t' => {}
                '#' if at == 0 || chars[at - 1].is_whitespace() => break,
                '"' | '\'' if node_start => self.quote = Some(c),
                '[' | '{' if node_start || self.flow > 0 => {
                    self.flow += 1;
                    if self.block.len() + self.flow > MAX_DEPTH {
                        return Err(too_deep(at));
                    }
                    node_start = true;
                }
                ']' | '}' if self.flow > 0 => {
                    self.flow -= 1;
                    node_start = false;
                }
                ',' if self.flow > 0 => node_start = true,
                ':' if self.flow > 0 => node_start = true,
                // `- ` and `? ` are indicators only where a node starts (`a - b` is one
                // scalar); `: ` ends a key wherever it is.
                '-' | '?' | ':' if self.flow == 0 && next_blank && (node_start || c == ':') => {
                    node_start = true;
                    // The node after the indicator is nested in the one that holds it.
                    self.block.push(at + 1);
                    if self.block.len() > MAX_DEPTH {
                        return Err(too_deep(at));
                    }
                }
                '|' | '>' if node_start && self.flow == 0 => {
                    self.block_scalar_parent = Some(indent);
                    break;
                }
                '&' | '!' if node_start => {
                    // An anchor or a tag comes before the node it names.
                    while at + 1 < chars.len() && !chars[at + 1].is_whitespace() {
                        at += 1;
                    }
                }
                _ => {
                    if node_start && self.flow == 0 && at == indent {
                        self.block.push(at);
                        if self.block.len() > MAX_DEPTH {
                            return Err(too_deep(at));
                        }
                    }
                    node_start = false;
                }
            }
            at += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_configurations_pass() {
        check_depth(super::super::EMBEDDED_DEFAULT).expect("default config");
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/xen_exporter.yml");
        let text = std::fs::read_to_string(examples).expect("example config");
        check_depth(&text).expect("example config");
    }

    #[test]
    fn deep_flow_nesting_is_refused_where_it_passes_the_limit() {
        let text = format!("xen: {}", "[".repeat(100_000));
        assert_eq!(
            check_depth(&text),
            Err(TooDeep {
                line: 1,
                column: 6 + MAX_DEPTH - 2
            })
        );
        let text = format!("xen:\n  rings: {}", "{a: ".repeat(50_000));
        assert!(check_depth(&text).is_err());
        let fits = format!(
            "x: {}{}",
            "[".repeat(MAX_DEPTH - 2),
            "]".repeat(MAX_DEPTH - 2)
        );
        check_depth(&fits).expect("62 levels of flow under one key");
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        assert!(check_depth(&"- ".repeat(1000)).is_err());
        let mut text = String::new();
        for level in 0..100 {
            text.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        // A key and its value count as two levels: line 64's value is the 65th.
        assert_eq!(
            check_depth(&text).map_err(|error| error.line),
            Err(MAX_DEPTH)
        );
    }

    #[test]
    fn brackets_in_scalars_comments_and_block_scalars_do_not_count() {
        let many = "[".repeat(200);
        for text in [
            format!("a: \"{many}\"\n"),
            format!("a: '{many}'\n"),
            format!("a: \"x\\\"{many}\"\n"),
            format!("a: 'it''s {many}'\n"),
            format!("a: \"multi\n  line {many}\"\nb: 1\n"),
            format!("a: 1 # {many}\n"),
            format!("# {many}\n"),
            format!("a: x{many}\n"),
            format!("a: x{}\n", " - y ?".repeat(200)),
            format!("a: |\n  {many}\n\n  {many}\nb: 1\n"),
            format!("- >-\n    {many}\n- 2\n"),
        ] {
            assert_eq!(check_depth(&text), Ok(()), "{text}");
        }
    }

    #[test]
    fn dedent_closes_block_levels() {
        let mut text = String::new();
        for _ in 0..1000 {
            text.push_str("a:\n  b:\n    c: [1, {d: [2]}]\n");
        }
        check_depth(&text).expect("wide but shallow");
    }
}
