//! The benchmark corpus. A corpus file is either a JSON array of XML strings or WeChat message
//! XML documents separated by blank lines, where a block that starts with an XML comment is
//! skipped. `bench/wechatpy_parse.py` splits files by the same rules, so both benchmarks
//! convert the same bytes.

use std::path::Path;

use anyhow::Context;

/// Reads a corpus file and returns its messages in file order.
pub fn read(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read corpus {}", path.display()))?;
    let messages = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array of strings", path.display()))?
    } else {
        split_blocks(&text)
    };
    if messages.is_empty() {
        anyhow::bail!("corpus {} contains no messages", path.display());
    }
    Ok(messages)
}

/// Splits text into blocks at blank lines (lines of only spaces and tabs) and drops comment
/// blocks. Lines inside a block are joined with `\n`; a trailing `\r` is removed from each.
pub fn split_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim_matches([' ', '\t']).is_empty() {
            push_block(&mut blocks, &mut current);
        } else {
            current.push(line);
        }
    }
    push_block(&mut blocks, &mut current);
    blocks
}

fn push_block(blocks: &mut Vec<String>, lines: &mut Vec<&str>) {
    if !lines.is_empty() && !lines[0].trim_start().starts_with("<!--") {
        blocks.push(lines.join("\n"));
    }
    lines.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_at_blank_lines() {
        let text =
            "<!-- about\nthe file -->\n\n<xml>\n<A>1</A>\r\n</xml>\n \t\n\n<xml><B/></xml>\n";
        let blocks = split_blocks(text);
        assert_eq!(blocks, vec!["<xml>\n<A>1</A>\n</xml>", "<xml><B/></xml>"]);
    }

    #[test]
    fn json_array_corpus_is_read() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), r#"["<xml>\n<A>1</A>\n\n</xml>", "<xml/>"]"#).unwrap();
        let messages = read(file.path()).unwrap();
        assert_eq!(messages, vec!["<xml>\n<A>1</A>\n\n</xml>", "<xml/>"]);
    }
}
