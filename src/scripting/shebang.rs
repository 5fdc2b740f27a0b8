//! The first line of a script or library: `#!lua flags=no-writes,allow-oom` on an EVAL
//! script, `#!lua name=mylib` on a FUNCTION LOAD library. Parsed as Redis does
//! (eval.c, functions.c), with Redis's error texts. Pure functions of the source.

use crate::store::scripts::flag;

/// An EVAL script's flags, and how many bytes its shebang line takes (the code after
/// it is compiled; the newline stays, so line numbers do not move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptHeader {
    pub flags: u8,
    pub shebang_len: usize,
}

/// Reads an EVAL script's shebang. No shebang: Redis's compatibility mode.
pub fn script_header(source: &[u8]) -> Result<ScriptHeader, String> {
    if !source.starts_with(b"#!") {
        return Ok(ScriptHeader { flags: flag::EVAL_COMPAT, shebang_len: 0 });
    }
    let Some(end) = source.iter().position(|&b| b == b'\n') else { return Err("Invalid script shebang".into()) };
    let line = String::from_utf8_lossy(&source[..end]);
    let parts = split_args(&line).ok_or("Invalid engine in script shebang")?;
    let Some(engine) = parts.first() else { return Err("Invalid engine in script shebang".into()) };
    if engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = 0;
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix("flags=") else { return Err(format!("Unknown lua shebang option: {part}")) };
        for name in list.split(',').filter(|n| !n.is_empty()) {
            flags |= flag::by_name(name, false).ok_or_else(|| format!("Unexpected flag in script shebang: {name}"))?;
        }
    }
    Ok(ScriptHeader { flags, shebang_len: end })
}

/// A library's metadata: engine and name from its first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryHeader {
    pub engine: String,
    pub name: String,
    /// Where the code after the shebang line starts (the newline is kept).
    pub code_at: usize,
}

pub fn library_header(code: &[u8]) -> Result<LibraryHeader, String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else { return Err("Invalid library metadata".into()) };
    let line = String::from_utf8_lossy(&code[..end]);
    let parts = split_args(&line).filter(|p| !p.is_empty()).ok_or("Invalid library metadata")?;
    let engine = parts[0].get(2..).unwrap_or_default().to_string();
    let mut name: Option<String> = None;
    for part in &parts[1..] {
        let lower = part.to_ascii_lowercase();
        if lower.starts_with("name=") {
            if name.is_some() {
                return Err("Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(part[5..].to_string());
            continue;
        }
        return Err(format!("Invalid metadata value given: {part}"));
    }
    let name = name.ok_or("Library name was not given")?;
    Ok(LibraryHeader { engine, name, code_at: end })
}

/// Library and function names: letters, digits and underscores, at least one.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits a line into arguments as Redis's sdssplitargs: spaces separate, double and
/// single quotes group (double quotes understand `\n`-style escapes). `None` on
/// unbalanced quotes.
pub fn split_args(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut current = String::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = chars.next();
            match (c, in_double, in_single) {
                (None, true, _) | (None, _, true) => return None,
                (None, _, _) => break,
                (Some('\\'), true, _) => match chars.next()? {
                    'n' => current.push('\n'),
                    'r' => current.push('\r'),
                    't' => current.push('\t'),
                    other => current.push(other),
                },
                (Some('"'), true, _) => {
                    if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                        return None;
                    }
                    break;
                }
                (Some('\''), _, true) => {
                    if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                        return None;
                    }
                    break;
                }
                (Some(c), true, _) | (Some(c), _, true) => current.push(c),
                (Some('"'), false, false) => in_double = true,
                (Some('\''), false, false) => in_single = true,
                (Some(c), false, false) if c.is_whitespace() => break,
                (Some(c), false, false) => current.push(c),
            }
        }
        out.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_shebangs_give_flags_or_redis_errors() {
        assert_eq!(script_header(b"return 1").unwrap().flags, flag::EVAL_COMPAT);
        let h = script_header(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert_eq!(h.flags, flag::NO_WRITES | flag::ALLOW_OOM);
        assert_eq!(h.shebang_len, 31);
        assert_eq!(script_header(b"#!lua\nreturn 1").unwrap().flags, 0);
        assert!(script_header(b"#!not-lua\n").unwrap_err().starts_with("Unexpected engine in script shebang"));
        assert!(script_header(b"#!lua badger=data\n").unwrap_err().starts_with("Unknown lua shebang option"));
        assert!(script_header(b"#!lua flags=allow-oom,what?\n").unwrap_err().starts_with("Unexpected flag in script shebang"));
        assert_eq!(script_header(b"#!lua").unwrap_err(), "Invalid script shebang");
    }

    #[test]
    fn library_headers_follow_redis() {
        let h = library_header(b"#!lua name=mylib\ncode").unwrap();
        assert_eq!((h.engine.as_str(), h.name.as_str(), h.code_at), ("lua", "mylib", 16));
        assert_eq!(library_header(b"#!lua name=\"foo\"\n").unwrap().name, "foo");
        assert_eq!(library_header(b"#!lua\n").unwrap_err(), "Library name was not given");
        assert_eq!(library_header(b"#!lua name=a name=b\n").unwrap_err(), "Invalid metadata value, name argument was given multiple times");
        assert_eq!(library_header(b"#!lua name=a foo=bar\n").unwrap_err(), "Invalid metadata value given: foo=bar");
        assert_eq!(library_header(b"return 1").unwrap_err(), "Missing library metadata");
        assert_eq!(library_header(b"#! name=test\n").unwrap().engine, "");
        assert!(valid_name("a_B9") && !valid_name("") && !valid_name("bad\0name"));
    }
}
