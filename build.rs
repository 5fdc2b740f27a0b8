//! Stamps the build into the binary: `TANDEM_BUILD` is the git commit the source was
//! built from (`tandem --version` prints it), so a bug report names the exact code.
//!
//! A packager building from a tarball (no `.git`) sets `TANDEM_BUILD` itself; without
//! either, the build says so ("unknown: not built from a git checkout") rather than
//! guessing. Only HEAD and the ref it names are watched: the build script reruns when
//! a commit is made or checked out, not on every source change.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TANDEM_BUILD");
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(given) = std::env::var("TANDEM_BUILD") {
        println!("cargo:rustc-env=TANDEM_BUILD={given}");
        println!("cargo:rustc-env=TANDEM_BUILD_SOURCE=env");
        return;
    }
    // Where the build came from (git, env or none), for the test of `--version`.
    let mut source = "none";
    let build = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            // Watch what moves when a commit is made: HEAD (a branch switch) and the
            // branch's ref, loose or packed, in the common git directory (worktrees).
            // Only files that exist: cargo counts a watched file that is missing as
            // changed, and would rebuild the whole crate on every build (a checkout
            // without packed-refs, or whose branch is packed and has no loose ref).
            let watch = |path: PathBuf| {
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            };
            if let (Some(dir), Some(common)) = (git(&["rev-parse", "--git-dir"]), git(&["rev-parse", "--git-common-dir"])) {
                watch(PathBuf::from(&dir).join("HEAD"));
                watch(PathBuf::from(&common).join("packed-refs"));
                if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    watch(PathBuf::from(&common).join(branch));
                }
            }
            source = "git";
            format!("commit {commit}")
        }
        None => "unknown: not built from a git checkout".to_string(),
    };
    println!("cargo:rustc-env=TANDEM_BUILD={build}");
    println!("cargo:rustc-env=TANDEM_BUILD_SOURCE={source}");
}
