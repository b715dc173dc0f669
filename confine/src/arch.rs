//! The one architecture list and the one x32 decision.
//!
//! Supported: x86_64, aarch64, riscv64. Any other target is a compile error: a seccomp table keyed
//! by syscall numbers means nothing on an architecture nobody has reviewed it for.

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
compile_error!("codex-confine supports x86_64, aarch64 and riscv64 only");

/// `AUDIT_ARCH_*` of the native syscall ABI (`EM_*` | 64-bit | little-endian).
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// `AUDIT_ARCH_*` of the native syscall ABI (`EM_*` | 64-bit | little-endian).
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
/// `AUDIT_ARCH_*` of the native syscall ABI (`EM_*` | 64-bit | little-endian).
#[cfg(target_arch = "riscv64")]
pub const AUDIT_ARCH: u32 = 243 | 0x8000_0000 | 0x4000_0000;

/// seccompiler's name for the same architecture.
#[cfg(target_arch = "x86_64")]
pub const TARGET_ARCH: seccompiler::TargetArch = seccompiler::TargetArch::x86_64;
/// seccompiler's name for the same architecture.
#[cfg(target_arch = "aarch64")]
pub const TARGET_ARCH: seccompiler::TargetArch = seccompiler::TargetArch::aarch64;
/// seccompiler's name for the same architecture.
#[cfg(target_arch = "riscv64")]
pub const TARGET_ARCH: seccompiler::TargetArch = seccompiler::TargetArch::riscv64;

/// x86_64's x32 ABI sets this bit in the syscall number: same audit arch, other numbers, which a
/// table keyed by x86_64 numbers would miss.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Whether the ABI filter must refuse x32 numbers (x86_64 only).
pub const HAS_X32: bool = cfg!(target_arch = "x86_64");

/// The answer to every x32 syscall: `EPERM`, like every other refusal of the tables.
///
/// Decision (the sandbox answered `ENOSYS`, the proxy `EPERM`): no program can fall back from an
/// x32 call to anything useful, so `ENOSYS`'s "try another call" buys nothing, while `EPERM` is
/// distinguishable from a kernel built without x32 (which answers `ENOSYS` itself): a test can
/// tell the filter's refusal from the kernel's on every machine.
pub const X32_ERRNO: i32 = libc::EPERM;
