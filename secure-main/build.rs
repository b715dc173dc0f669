//! Every binary that links secure-main gets the unwinder from `libgcc_eh.a` (static) instead of
//! `libgcc_s.so.1`: the native libraries of a crate come before the standard library's on the
//! link line, so the `_Unwind_*` symbols resolve here and `--as-needed` drops `libgcc_s`. Its
//! constructor (`__cpu_indicator_init`, CPUID instructions that trap to the hypervisor on a
//! VM) and its loading cost about 0.1 ms at every start (issue 12: `codex sandbox linux --
//! /bin/true`). The binaries are `panic = "abort"`; the unwinder only walks stacks for panic
//! messages. Linux with glibc only (musl and macOS have no `libgcc_s` to drop).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
