//! Scripts as replicated state: the script cache (SCRIPT LOAD, EVAL) and the
//! function libraries (FUNCTION LOAD), with the stripe's script limits. These are
//! entered only through the log, travel in snapshots and count in the digest, so a
//! mirror that becomes the active knows every script its predecessor knew.
//!
//! Only sources and what loading them declared (function names, flags,
//! descriptions) are state. Compiled Lua functions are a per-server cache kept by
//! [`crate::scripting::Engine`], rebuilt from these sources whenever needed.
//!
//! This module knows nothing of Lua: it stores, bounds and encodes.

use bytes::Bytes;
use indexmap::IndexMap;

use super::codec::{put_bytes, put_varint, CodecError, Decoder};
use crate::limits;

/// Script flags (shebang `flags=` or `redis.register_function{flags=…}`), Redis's names.
pub mod flag {
    pub const NO_WRITES: u8 = 1 << 0;
    pub const ALLOW_OOM: u8 = 1 << 1;
    pub const ALLOW_STALE: u8 = 1 << 2;
    pub const NO_CLUSTER: u8 = 1 << 3;
    pub const ALLOW_CROSS_SLOT: u8 = 1 << 4;
    /// An EVAL script without a shebang: Redis's backwards-compatible mode.
    pub const EVAL_COMPAT: u8 = 1 << 7;

    /// Flags by name, in the order FUNCTION LIST shows them.
    pub const NAMES: &[(u8, &str)] = &[
        (NO_WRITES, "no-writes"),
        (ALLOW_OOM, "allow-oom"),
        (ALLOW_STALE, "allow-stale"),
        (NO_CLUSTER, "no-cluster"),
        (ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
    ];

    pub fn by_name(name: &str, ignore_case: bool) -> Option<u8> {
        NAMES.iter().find(|(_, n)| if ignore_case { n.eq_ignore_ascii_case(name) } else { *n == name }).map(|(f, _)| *f)
    }
}

/// A function a library registered when it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<String>,
    pub flags: u8,
}

/// A function library: its whole code (shebang included) and what loading it registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub name: String,
    pub engine: String,
    pub code: Bytes,
    pub functions: Vec<FunctionInfo>,
}

/// The limits every script runs under. State, not configuration: every server of the
/// stripe must stop a script at the same instruction, so the limits travel through
/// the log (`TANDEM.SCRIPTLIMITS`) and in snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Lua instructions (plus a fixed charge per `redis.call`) one script may run.
    pub instructions_max: u64,
    /// Bytes the Lua heap may grow by during one script.
    pub memory_bytes_max: u64,
    /// Whether a script may touch keys it did not declare in KEYS. Allowed by default,
    /// as standalone Redis does (Redis's own tests and many scripts rely on it); an
    /// array of several stripes must keep a script's keys in its stripe.
    pub undeclared_keys: bool,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            instructions_max: limits::SCRIPT_INSTRUCTIONS_DEFAULT,
            memory_bytes_max: limits::SCRIPT_MEMORY_BYTES_DEFAULT,
            undeclared_keys: true,
        }
    }
}

/// Why a script or library was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptsError {
    #[error("ERR the script cache is full ({count} scripts, {bytes} bytes; the limits are {count_max} and {bytes_max}): run SCRIPT FLUSH")]
    CacheFull { count: usize, bytes: usize, count_max: usize, bytes_max: usize },
    #[error("ERR the function libraries are full ({count} libraries, {bytes} bytes; the limits are {count_max} and {bytes_max}): delete some with FUNCTION DELETE")]
    LibrariesFull { count: usize, bytes: usize, count_max: usize, bytes_max: usize },
    #[error("ERR Library '{0}' already exists")]
    LibraryExists(String),
    #[error("ERR Function {0} already exists")]
    FunctionExists(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scripts {
    /// Lower-case hex SHA-1 → source, in insertion order (snapshots keep it).
    cache: IndexMap<String, Bytes, crate::store::value::Hasher>,
    cache_bytes: usize,
    /// Lower-case library name → library.
    libraries: IndexMap<String, Library>,
    /// Lower-case function name → lower-case library name (derived from `libraries`).
    functions: IndexMap<String, String>,
    library_bytes: usize,
    pub limits: ScriptLimits,
}

/// The SHA-1 of `source` in lower-case hex: a script's name in EVALSHA.
pub fn sha1_hex(source: &[u8]) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(source);
    let mut out = String::with_capacity(40);
    for b in digest {
        out.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
        out.push(char::from_digit((b & 15) as u32, 16).unwrap_or('0'));
    }
    out
}

impl Scripts {
    // --- the script cache ---

    pub fn script(&self, sha: &str) -> Option<&Bytes> {
        self.cache.get(sha)
    }

    pub fn script_count(&self) -> usize {
        self.cache.len()
    }

    pub fn script_bytes(&self) -> usize {
        self.cache_bytes
    }

    /// Adds `source` under `sha` (its SHA-1, lower-case hex). Already there: nothing to do.
    pub fn add_script(&mut self, sha: String, source: Bytes) -> Result<(), ScriptsError> {
        if self.cache.contains_key(&sha) {
            return Ok(());
        }
        let bytes = self.cache_bytes + source.len();
        if self.cache.len() >= limits::SCRIPT_CACHE_COUNT_MAX || bytes > limits::SCRIPT_CACHE_BYTES_MAX {
            return Err(ScriptsError::CacheFull {
                count: self.cache.len(),
                bytes: self.cache_bytes,
                count_max: limits::SCRIPT_CACHE_COUNT_MAX,
                bytes_max: limits::SCRIPT_CACHE_BYTES_MAX,
            });
        }
        self.cache_bytes = bytes;
        // A copy: `source` may be a slice of a buffer a whole batch of commands shares.
        self.cache.insert(sha, Bytes::copy_from_slice(&source));
        Ok(())
    }

    pub fn flush_scripts(&mut self) {
        self.cache = IndexMap::default();
        self.cache_bytes = 0;
    }

    // --- function libraries ---

    pub fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.libraries.values()
    }

    pub fn library_count(&self) -> usize {
        self.libraries.len()
    }

    pub fn library(&self, name: &str) -> Option<&Library> {
        self.libraries.get(&name.to_ascii_lowercase())
    }

    /// The library holding function `name` (case-insensitive) and the function's info.
    pub fn function(&self, name: &str) -> Option<(&Library, &FunctionInfo)> {
        let lower = name.to_ascii_lowercase();
        let library = self.libraries.get(self.functions.get(&lower)?)?;
        let info = library.functions.iter().find(|f| f.name.eq_ignore_ascii_case(name))?;
        Some((library, info))
    }

    pub fn function_count(&self) -> usize {
        self.functions.len()
    }

    /// Adds the libraries of `new` together, replacing same-named ones when `replace`:
    /// nothing changes unless all of them fit (Redis's libraryJoin).
    pub fn add_libraries(&mut self, new: Vec<Library>, replace: bool) -> Result<(), ScriptsError> {
        let mut next = self.clone_libraries();
        for library in &new {
            let key = library.name.to_ascii_lowercase();
            if next.libraries.contains_key(&key) {
                if !replace {
                    return Err(ScriptsError::LibraryExists(library.name.clone()));
                }
                next.remove_library(&key);
            }
        }
        for library in new {
            for f in &library.functions {
                if next.functions.contains_key(&f.name.to_ascii_lowercase()) {
                    return Err(ScriptsError::FunctionExists(f.name.clone()));
                }
            }
            next.insert_library(library)?;
        }
        self.libraries = next.libraries;
        self.functions = next.functions;
        self.library_bytes = next.library_bytes;
        Ok(())
    }

    fn clone_libraries(&self) -> Scripts {
        Scripts {
            libraries: self.libraries.clone(),
            functions: self.functions.clone(),
            library_bytes: self.library_bytes,
            ..Scripts::default()
        }
    }

    fn insert_library(&mut self, mut library: Library) -> Result<(), ScriptsError> {
        // A copy: the code may be a slice of a buffer a whole batch of commands shares.
        library.code = Bytes::copy_from_slice(&library.code);
        let bytes = self.library_bytes + library.code.len();
        if self.libraries.len() >= limits::FUNCTION_LIBRARIES_MAX || bytes > limits::FUNCTION_LIBRARY_BYTES_MAX {
            return Err(ScriptsError::LibrariesFull {
                count: self.libraries.len(),
                bytes: self.library_bytes,
                count_max: limits::FUNCTION_LIBRARIES_MAX,
                bytes_max: limits::FUNCTION_LIBRARY_BYTES_MAX,
            });
        }
        let key = library.name.to_ascii_lowercase();
        for f in &library.functions {
            self.functions.insert(f.name.to_ascii_lowercase(), key.clone());
        }
        self.library_bytes = bytes;
        self.libraries.insert(key, library);
        Ok(())
    }

    /// Removes library `name` (case-insensitive); false if there was none.
    pub fn remove_library(&mut self, name: &str) -> bool {
        let Some(library) = self.libraries.shift_remove(&name.to_ascii_lowercase()) else { return false };
        for f in &library.functions {
            self.functions.shift_remove(&f.name.to_ascii_lowercase());
        }
        self.library_bytes -= library.code.len();
        true
    }

    pub fn flush_libraries(&mut self) {
        self.libraries = IndexMap::new();
        self.functions = IndexMap::new();
        self.library_bytes = 0;
    }

    // --- encoding (snapshots, FUNCTION DUMP, the digest) ---

    /// Hashes everything that is state into `write` (byte strings, each length-framed).
    pub fn digest_into(&self, write: &mut dyn FnMut(&[u8])) {
        for source in self.cache.values() {
            write(source);
        }
        for library in self.libraries.values() {
            write(&encode_library(library));
        }
        write(&encode_limits(&self.limits));
    }

    pub fn sources(&self) -> impl Iterator<Item = &Bytes> {
        self.cache.values()
    }
}

/// One library: name, engine, code, then each function's name, description and flags.
pub fn encode_library(library: &Library) -> Vec<u8> {
    let mut out = Vec::with_capacity(library.code.len() + 64);
    put_bytes(&mut out, library.name.as_bytes());
    put_bytes(&mut out, library.engine.as_bytes());
    put_bytes(&mut out, &library.code);
    put_varint(&mut out, library.functions.len() as u64);
    for f in &library.functions {
        put_bytes(&mut out, f.name.as_bytes());
        match &f.description {
            Some(d) => {
                out.push(1);
                put_bytes(&mut out, d.as_bytes());
            }
            None => out.push(0),
        }
        out.push(f.flags);
    }
    out
}

fn text(d: &mut Decoder<'_>, what: &'static str) -> Result<String, CodecError> {
    let offset = d.offset();
    let bytes = d.bytes(what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Invalid { what, offset, why: "not UTF-8".into() })
}

/// Reads what [`encode_library`] wrote.
pub fn decode_library(d: &mut Decoder<'_>) -> Result<Library, CodecError> {
    let name = text(d, "library name")?;
    let engine = text(d, "engine name")?;
    let code = Bytes::copy_from_slice(d.bytes("library code")?);
    let count = d.count("function count", 3)?;
    let mut functions = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let name = text(d, "function name")?;
        let description = match d.u8("description marker")? {
            0 => None,
            1 => Some(text(d, "function description")?),
            other => {
                return Err(CodecError::Invalid { what: "description marker", offset: d.offset(), why: format!("{other} is not 0 or 1") })
            }
        };
        let flags = d.u8("function flags")?;
        functions.push(FunctionInfo { name, description, flags });
    }
    Ok(Library { name, engine, code, functions })
}

pub fn encode_limits(limits: &ScriptLimits) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    put_varint(&mut out, limits.instructions_max);
    put_varint(&mut out, limits.memory_bytes_max);
    out.push(limits.undeclared_keys as u8);
    out
}

pub fn decode_limits(d: &mut Decoder<'_>) -> Result<ScriptLimits, CodecError> {
    let instructions_max = d.varint("instruction budget")?;
    let memory_bytes_max = d.varint("memory budget")?;
    let undeclared_keys = match d.u8("undeclared-keys flag")? {
        0 => false,
        1 => true,
        other => {
            return Err(CodecError::Invalid { what: "undeclared-keys flag", offset: d.offset(), why: format!("{other} is not 0 or 1") })
        }
    };
    Ok(ScriptLimits { instructions_max, memory_bytes_max, undeclared_keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str, functions: &[&str]) -> Library {
        Library {
            name: name.into(),
            engine: "LUA".into(),
            code: Bytes::from(format!("#!lua name={name}\n")),
            functions: functions.iter().map(|f| FunctionInfo { name: (*f).into(), description: None, flags: 0 }).collect(),
        }
    }

    #[test]
    fn sha1_is_redis_script_name() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"Pizza & Mandolino"), "74822d82031af7493c20eefa13bd07ec4fada82f");
    }

    #[test]
    fn adding_libraries_is_all_or_nothing() {
        let mut s = Scripts::default();
        s.add_libraries(vec![lib("a", &["f1", "f2"])], false).unwrap();
        assert_eq!(s.add_libraries(vec![lib("A", &["g"])], false), Err(ScriptsError::LibraryExists("A".into())));
        assert_eq!(s.add_libraries(vec![lib("b", &["g"]), lib("c", &["F1"])], false), Err(ScriptsError::FunctionExists("F1".into())));
        assert!(s.library("b").is_none(), "a refused join leaves nothing behind");
        s.add_libraries(vec![lib("a", &["f3"])], true).unwrap();
        assert!(s.function("f1").is_none());
        assert_eq!(s.function("F3").map(|(l, _)| l.name.as_str()), Some("a"));
        assert!(s.remove_library("A"));
        assert_eq!(s.function_count(), 0);
    }

    #[test]
    fn the_cache_refuses_past_its_bound_with_a_clear_error() {
        let mut s = Scripts::default();
        for i in 0..limits::SCRIPT_CACHE_COUNT_MAX {
            let src = Bytes::from(format!("return {i}"));
            s.add_script(sha1_hex(&src), src).unwrap();
        }
        let src = Bytes::from_static(b"return 'one more'");
        let err = s.add_script(sha1_hex(&src), src).unwrap_err();
        assert!(err.to_string().contains("script cache is full"), "{err}");
        s.flush_scripts();
        assert_eq!((s.script_count(), s.script_bytes()), (0, 0));
    }

    #[test]
    fn libraries_and_limits_round_trip() {
        let mut l = lib("x", &["f"]);
        l.functions[0].description = Some("desc".into());
        l.functions[0].flags = flag::NO_WRITES | flag::ALLOW_STALE;
        let bytes = encode_library(&l);
        let mut d = Decoder::new(&bytes);
        assert_eq!(decode_library(&mut d).unwrap(), l);
        d.finish().unwrap();
        let limits = ScriptLimits { instructions_max: 7, memory_bytes_max: 9, undeclared_keys: true };
        let bytes = encode_limits(&limits);
        assert_eq!(decode_limits(&mut Decoder::new(&bytes)).unwrap(), limits);
    }
}
