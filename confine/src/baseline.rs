//! The baseline rows: kernel interfaces no process confined by this suite needs, denied by
//! both profiles (the sandbox adds its socket rule; the proxy adds exec, credential changes,
//! machine administration and more). One list, so that the two tables cannot drift apart on the
//! part they share.

use crate::seccomp::Condition::{Always, Bits64, Eq32};
use crate::seccomp::Rule;

// `Ioctl` is c_ulong on glibc and c_int on musl; the request numbers are small and positive.
#[allow(clippy::unnecessary_cast)]
const TIOCSTI: u32 = libc::TIOCSTI as u32;
#[allow(clippy::unnecessary_cast)]
const TIOCLINUX: u32 = libc::TIOCLINUX as u32;

/// `clone` with a namespace flag: one row per flag (rows are ORed). `CLONE_NEWTIME` shares its
/// bit with the exit signal in `clone` and is only valid in `clone3`/`unshare`, both refused.
const fn clone_ns(name: &'static str, flag: libc::c_int) -> Rule {
    Rule::new(
        name,
        libc::SYS_clone,
        Bits64 {
            arg: 0,
            mask: flag as u64,
        },
        "see unshare",
    )
}

/// The rows every profile denies (with `EPERM`).
pub const BASELINE: &[Rule] = &[
    Rule::new(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        Always,
        "io_uring performs socket/file operations without passing through this filter",
    ),
    Rule::new(
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        Always,
        "see io_uring_setup",
    ),
    Rule::new(
        "io_uring_register",
        libc::SYS_io_uring_register,
        Always,
        "see io_uring_setup",
    ),
    Rule::new(
        "ptrace",
        libc::SYS_ptrace,
        Always,
        "no tracing of any process, nor being used to read memory (Landlock scopes it too; this removes the interface)",
    ),
    Rule::new(
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        Always,
        "reads another process's memory",
    ),
    Rule::new(
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        Always,
        "writes another process's memory",
    ),
    Rule::new(
        "unshare",
        libc::SYS_unshare,
        Always,
        "new namespaces: a user namespace hands out capabilities, a mount namespace could hide carve-outs",
    ),
    Rule::new("setns", libc::SYS_setns, Always, "joining other namespaces"),
    Rule::new(
        "keyctl",
        libc::SYS_keyctl,
        Always,
        "kernel keyrings are per user and outlive the sandbox",
    ),
    Rule::new("add_key", libc::SYS_add_key, Always, "see keyctl"),
    Rule::new("request_key", libc::SYS_request_key, Always, "see keyctl"),
    Rule::new(
        "bpf",
        libc::SYS_bpf,
        Always,
        "eBPF programs and maps: large kernel attack surface",
    ),
    Rule::new(
        "perf_event_open",
        libc::SYS_perf_event_open,
        Always,
        "observes other processes and the kernel; large attack surface",
    ),
    Rule::new(
        "userfaultfd",
        libc::SYS_userfaultfd,
        Always,
        "widens kernel race windows for exploits",
    ),
    Rule::new(
        "ioctl(TIOCSTI)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: TIOCSTI,
        },
        "pushing input into a terminal (bubblewrap CVE-2017-5226)",
    ),
    Rule::new(
        "ioctl(TIOCLINUX)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: TIOCLINUX,
        },
        "TIOCLINUX subcodes paste into a virtual console like TIOCSTI",
    ),
    Rule::new(
        "mount",
        libc::SYS_mount,
        Always,
        "mount topology stays as set up: the sandbox's read-only carve-outs stay in place",
    ),
    Rule::new("umount2", libc::SYS_umount2, Always, "see mount"),
    Rule::new("pivot_root", libc::SYS_pivot_root, Always, "see mount"),
    Rule::new("move_mount", libc::SYS_move_mount, Always, "see mount"),
    Rule::new("open_tree", libc::SYS_open_tree, Always, "see mount"),
    Rule::new("fsopen", libc::SYS_fsopen, Always, "see mount"),
    Rule::new("fsmount", libc::SYS_fsmount, Always, "see mount"),
    Rule::new("fsconfig", libc::SYS_fsconfig, Always, "see mount"),
    Rule::new("fspick", libc::SYS_fspick, Always, "see mount"),
    Rule::new(
        "mount_setattr",
        libc::SYS_mount_setattr,
        Always,
        "see mount",
    ),
    Rule::new(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        Always,
        "opens files by handle, bypassing path-based Landlock checks (needs CAP_DAC_READ_SEARCH)",
    ),
    Rule::new(
        "init_module",
        libc::SYS_init_module,
        Always,
        "a process run as root keeps capabilities; loading code into the kernel is never needed",
    ),
    Rule::new(
        "finit_module",
        libc::SYS_finit_module,
        Always,
        "see init_module",
    ),
    Rule::new(
        "delete_module",
        libc::SYS_delete_module,
        Always,
        "see init_module",
    ),
    Rule::new(
        "kexec_load",
        libc::SYS_kexec_load,
        Always,
        "see init_module",
    ),
    Rule::new(
        "kexec_file_load",
        SYS_KEXEC_FILE_LOAD,
        Always,
        "see init_module",
    ),
    clone_ns("clone(CLONE_NEWUSER)", libc::CLONE_NEWUSER),
    clone_ns("clone(CLONE_NEWNS)", libc::CLONE_NEWNS),
    clone_ns("clone(CLONE_NEWPID)", libc::CLONE_NEWPID),
    clone_ns("clone(CLONE_NEWNET)", libc::CLONE_NEWNET),
    clone_ns("clone(CLONE_NEWUTS)", libc::CLONE_NEWUTS),
    clone_ns("clone(CLONE_NEWIPC)", libc::CLONE_NEWIPC),
    clone_ns("clone(CLONE_NEWCGROUP)", libc::CLONE_NEWCGROUP),
];

/// `kexec_file_load`: libc 0.2 names it on x86_64 and aarch64 but not on riscv64, where the
/// generic table gives it 294 as well (`include/uapi/asm-generic/unistd.h`).
#[cfg(not(target_arch = "riscv64"))]
const SYS_KEXEC_FILE_LOAD: libc::c_long = libc::SYS_kexec_file_load;
#[cfg(target_arch = "riscv64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = 294;
