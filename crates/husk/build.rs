//! Lays husk's functions out by use: symbol-order.txt (made by scripts/symbol-order.sh) lists
//! the functions the common calls run, those every call runs first, and lld places them in that
//! order. The kernel maps a binary's text 64 KiB around each page fault, so code that runs
//! together, kept together, is most of what a call's peak RSS is made of.
//!
//! Only lld knows --symbol-ordering-file: the file is passed when rustc links with its own lld
//! (the default on x86_64-unknown-linux-gnu since Rust 1.90) and nothing asks for another
//! linker; otherwise the binary links as before, in the linker's order.
//!
//! The names in the file are this very build's: Rust symbol names carry a hash of the crate's
//! metadata, which covers the profile, so an order made from a differently configured build
//! (an unstripped one, once) matches none of the Rust functions, only the C ones, and silently
//! maps up to twice the text. The release profile keeps the symbol table, so that
//! scripts/symbol-order.sh probes the release binary itself and scripts/test.sh checks the
//! order against it.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else { return };
    let order = std::path::Path::new(&dir).join("symbol-order.txt");
    if order.is_file() && uses_rust_lld() {
        println!("cargo:rustc-link-arg-bin=husk=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bin=husk=-Wl,--no-warn-symbol-ordering");
    }
}

fn uses_rust_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let target_linker = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER";
    if env::var_os("RUSTC_LINKER").is_some() || env::var_os(target_linker).is_some() {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["linker", "fuse-ld", "linker-flavor", "linker-features"].iter().any(|f| flags.contains(f)) {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else { return false };
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)).and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
