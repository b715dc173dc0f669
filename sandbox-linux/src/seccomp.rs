//! The sandbox's seccomp profile: a table of `codex_confine::seccomp::Rule`s, one reason each.
//!
//! Default action: allow (Landlock confines the filesystem; this table removes kernel interfaces
//! that Landlock does not cover): the socket families, then `codex-confine`'s baseline rows
//! ([`codex_confine::seccomp::BASELINE`]: io_uring, ptrace, process_vm_*, namespaces, keyrings,
//! bpf, perf, userfaultfd, TIOCSTI/TIOCLINUX, the mount API, open_by_handle_at, modules, kexec).
//! A matching row fails with `EPERM`. The mechanism (the ABI filter
//! that kills foreign architectures, refuses x32 numbers and answers `clone3` with `ENOSYS`, the
//! compiler and the installer) is `codex-confine`'s.

use codex_confine::seccomp::Condition::{self, Always, Bits64, Eq32, NotIn32};
use codex_confine::seccomp::{BASELINE, Filter, Rule};

pub use codex_confine::seccomp::SeccompError;

/// Socket families without network access.
const FAMILIES_LOCAL: &[u32] = &[libc::AF_UNIX as u32];
/// Socket families with network access.
const FAMILIES_NETWORK: &[u32] = &[
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
];

/// `socket(domain, ...)` outside the allowed families.
const fn socket_rule(allowed: &'static [u32]) -> Rule {
    Rule::new(
        "socket",
        libc::SYS_socket,
        NotIn32 { arg: 0, allowed },
        "only AF_UNIX (and AF_INET/AF_INET6 with network access): no netlink, packet, vsock, bluetooth, etc.",
    )
}

/// The whole table for a policy with or without network access: the socket rule and
/// `codex-confine`'s baseline rows.
pub fn table(network: bool) -> Vec<Rule> {
    let socket = socket_rule(if network {
        FAMILIES_NETWORK
    } else {
        FAMILIES_LOCAL
    });
    std::iter::once(socket)
        .chain(BASELINE.iter().copied())
        .chain(MODES.iter().copied())
        .collect()
}

/// `S_ISUID`, `S_ISGID` and `S_IWOTH`: the mode bits a command may not give a file (see
/// [`MODES`]).
pub const FORBIDDEN_MODE_BITS: u32 = libc::S_ISUID | libc::S_ISGID | libc::S_IWOTH;

const fn ioctl_row(name: &'static str, cmd: u32, reason: &'static str) -> Rule {
    Rule::new(name, libc::SYS_ioctl, Eq32 { arg: 1, value: cmd }, reason)
}

/// `_IOW(0x94, 9, int)` and `_IOW(0x94, 13, struct file_clone_range)` (linux/fs.h).
/// `PRIO_PROCESS` as the filter compares it (glibc types it `u32`, musl `c_int`).
const PRIO_PROCESS: u32 = 0;
const FICLONE: u32 = 0x4004_9409;
const FICLONERANGE: u32 = 0x4020_940d;

/// An fscrypt call by type `'f'` and number `nr`, whatever its direction and size bits.
const fn fscrypt_row(name: &'static str, nr: u32, reason: &'static str) -> Rule {
    Rule::new(
        name,
        libc::SYS_ioctl,
        Condition::Masked32 {
            arg: 1,
            mask: 0xffff,
            value: 0x6600 | nr,
            except: &[],
        },
        reason,
    )
}

const fn mode_row(name: &'static str, nr: libc::c_long, arg: u8, bit: u32) -> Rule {
    Rule::new(
        name,
        nr,
        Bits64 {
            arg,
            mask: bit as u64,
        },
        "a setuid, setgid or other-writable mode hands the user's uid, group or files to other \
         local users (see MODES)",
    )
}

/// File modes that hand the user's identity or files to other local users (and terminal states
/// that outlive the sandbox, last rows), refused inside the
/// writable roots too (found while closing round-8 F4): a setuid or setgid file is a door into the user's
/// uid or group for anyone who can reach it (`/tmp` is a default root: `cp sh /tmp/x; chmod
/// u+s /tmp/x` gave every local user a shell as the user), and a mode writable by others lets
/// another local user change what the user runs next (round-8 F4: a nested repository's
/// `config` made writable by everyone). `chmod` takes the mode as given, so the three bits are
/// refused here (one row per bit: rows of one call are ORed). A creation mode passes through
/// the umask (`0666` is every `fopen`'s): the notifying filter refuses `S_ISUID`/`S_ISGID` in
/// one (never a default, [`crate::unix_connect`]) and the name guard clears `S_IWOTH` from the
/// mode it creates with. ACLs (`setfacl -m u:other:rw`) are extended attributes: setting any
/// extended attribute is refused, since seccomp cannot read the attribute's name and checking
/// it in the supervisor before letting the call go on would be racy (the sandbox answers
/// `EOPNOTSUPP` instead of this table's `EPERM`: `crate::meta_guard::sys::install_xattr_unsupported`).
pub const MODES: &[Rule] = &[
    #[cfg(target_arch = "x86_64")]
    mode_row("chmod(S_ISUID)", libc::SYS_chmod, 1, libc::S_ISUID),
    #[cfg(target_arch = "x86_64")]
    mode_row("chmod(S_ISGID)", libc::SYS_chmod, 1, libc::S_ISGID),
    #[cfg(target_arch = "x86_64")]
    mode_row("chmod(S_IWOTH)", libc::SYS_chmod, 1, libc::S_IWOTH),
    mode_row("fchmod(S_ISUID)", libc::SYS_fchmod, 1, libc::S_ISUID),
    mode_row("fchmod(S_ISGID)", libc::SYS_fchmod, 1, libc::S_ISGID),
    mode_row("fchmod(S_IWOTH)", libc::SYS_fchmod, 1, libc::S_IWOTH),
    mode_row("fchmodat(S_ISUID)", libc::SYS_fchmodat, 2, libc::S_ISUID),
    mode_row("fchmodat(S_ISGID)", libc::SYS_fchmodat, 2, libc::S_ISGID),
    mode_row("fchmodat(S_IWOTH)", libc::SYS_fchmodat, 2, libc::S_IWOTH),
    mode_row("fchmodat2(S_ISUID)", SYS_FCHMODAT2, 2, libc::S_ISUID),
    mode_row("fchmodat2(S_ISGID)", SYS_FCHMODAT2, 2, libc::S_ISGID),
    mode_row("fchmodat2(S_IWOTH)", SYS_FCHMODAT2, 2, libc::S_IWOTH),
    Rule::new(
        "setxattr",
        libc::SYS_setxattr,
        Always,
        "ACLs are extended attributes (system.posix_acl_access grants other users access) and \
         seccomp cannot read the name: no extended attribute is set (see MODES)",
    ),
    Rule::new("lsetxattr", libc::SYS_lsetxattr, Always, "see setxattr"),
    Rule::new("fsetxattr", libc::SYS_fsetxattr, Always, "see setxattr"),
    Rule::new("setxattrat", SYS_SETXATTRAT, Always, "see setxattr"),
    // the user's terminal outlives the sandbox (outside review r10 F-S4: `TIOCSETD(N_NULL)`
    // left the pane dead after the command returned)
    Rule::new(
        "ioctl(TIOCSETD)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: libc::TIOCSETD as u32,
        },
        "a line discipline set on the user's terminal (N_NULL swallows all input and output) \
         stays after the sandbox returned",
    ),
    Rule::new(
        "ioctl(TCXONC)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: libc::TCXONC as u32,
        },
        "output suspended on the user's terminal (tcflow TCOOFF) stays suspended after the \
         sandbox returned",
    ),
    // outside review r16 F2: inode state that is not mode/owner/times/xattrs, changed through a
    // descriptor the command was handed (the user's redirected file): refused everywhere.
    ioctl_row(
        "ioctl(FS_IOC_SETVERSION)",
        0x4008_7602,
        "rewrites the inode generation and its ctime",
    ),
    ioctl_row(
        "ioctl(FS_IOC32_SETVERSION)",
        0x4004_7602,
        "see FS_IOC_SETVERSION",
    ),
    // outside review r51 F3: ext4's own number for the same call (`_IOW('f', 4, long)`) reached
    // the same handler through a read-only descriptor of the user's file
    ioctl_row(
        "ioctl(EXT4_IOC_SETVERSION)",
        0x4008_6604,
        "see FS_IOC_SETVERSION (ext4's spelling)",
    ),
    ioctl_row(
        "ioctl(EXT4_IOC32_SETVERSION)",
        0x4004_6604,
        "see FS_IOC_SETVERSION (ext4's 32-bit spelling)",
    ),
    ioctl_row(
        "ioctl(EXT4_IOC_MIGRATE)",
        0x6609,
        "rewrites an inode's block map into extents and sets its extents flag, through any \
         descriptor the owner holds",
    ),
    ioctl_row(
        "ioctl(BTRFS_IOC_SUBVOL_SETFLAGS)",
        0x4008_941a,
        "makes the owner's btrfs subvolume read-only (or writable) through a read-only \
         descriptor of its directory",
    ),
    ioctl_row(
        "ioctl(BTRFS_IOC_SET_RECEIVED_SUBVOL)",
        0xc0c8_9425,
        "rewrites a btrfs subvolume's received UUID and times (what `btrfs send -p` trusts)",
    ),
    // outside review r58 F1/F2: a btrfs snapshot of the user's home subvolume (a directory
    // descriptor opened read-only) made inside a writable root carried the deny-read secrets
    // with it, and subvolumes named `.git`/`.hg` (a snapshot with an `hgrc` hook) passed the
    // name guard; without namespaces both were made outside every root. The whole btrfs family
    // (type byte 0x94) is refused but for the two clones, whose destination is a descriptor
    // opened for writing (Landlock decides that open): `cp --reflink` keeps working.
    Rule::new(
        "ioctl(btrfs family 0x94, but FICLONE and FICLONERANGE)",
        libc::SYS_ioctl,
        Condition::Masked32 {
            arg: 1,
            mask: 0xff00,
            value: 0x9400,
            except: &[FICLONE, FICLONERANGE],
        },
        "btrfs subvolume and snapshot creation and removal (a snapshot copies every file of a \
         subvolume the user owns, deny-read ones too, under any name), dedupe through read-only \
         descriptors, subvolume flags, labels",
    ),
    // outside review r58 F3/F4: fscrypt keys belong to the filesystem, not to the sandbox:
    // `FS_IOC_REMOVE_ENCRYPTION_KEY` locked the user's unlocked encrypted directories (they
    // stayed locked after the sandbox returned) and `FS_IOC_ADD_ENCRYPTION_KEY` filled the
    // user's kernel key quota past the keyring calls seccomp refuses. Matched by type and
    // number, whatever the size bits.
    // outside review r60 F1: on ext4 with `encrypt` and no salt yet, the first call writes a
    // new salt into the superblock, through any descriptor (read-only, or a root-owned file)
    fscrypt_row(
        "ioctl(FS_IOC_GET_ENCRYPTION_PWSALT)",
        20,
        "writes a salt into the file system's superblock the first time",
    ),
    fscrypt_row(
        "ioctl(FS_IOC_ADD_ENCRYPTION_KEY)",
        23,
        "adds a key to the filesystem's keyring, charged to the user's key quota",
    ),
    fscrypt_row(
        "ioctl(FS_IOC_REMOVE_ENCRYPTION_KEY)",
        24,
        "locks the user's unlocked encrypted directories",
    ),
    fscrypt_row(
        "ioctl(FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS)",
        25,
        "see FS_IOC_REMOVE_ENCRYPTION_KEY",
    ),
    // outside review r58 F6: a read lease on a file the user owns (any file the command can
    // read) blocked the user's own writers outside until the command exited
    Rule::new(
        "fcntl(F_SETLEASE)",
        libc::SYS_fcntl,
        Eq32 {
            arg: 1,
            value: libc::F_SETLEASE as u32,
        },
        "a lease on the user's file holds the user's own open-for-write outside for up to \
         lease-break-time (45 s) per attempt",
    ),
    // outside review r100 F1: dnotify on a deny-read directory the command may list (`~`,
    // `~/.ssh`) signalled each read of a file in it by the user's tools outside (the inotify
    // watches of `crate::watch_guard` refused; this older interface needs only an open
    // directory)
    Rule::new(
        "fcntl(F_NOTIFY)",
        libc::SYS_fcntl,
        Eq32 {
            arg: 1,
            value: libc::F_NOTIFY as u32,
        },
        "directory notification (dnotify) reports the user's accesses to files the command \
         cannot read, with their timing",
    ),
    ioctl_row(
        "ioctl(FS_IOC_ENABLE_VERITY)",
        0x4080_6685,
        "makes the file read-only for ever",
    ),
    ioctl_row(
        "ioctl(FS_IOC_SET_ENCRYPTION_POLICY)",
        0x800c_6613,
        "encrypts a directory for good",
    ),
    ioctl_row(
        "ioctl(FS_IOC_SETFSLABEL)",
        0x4100_9432,
        "renames the whole filesystem",
    ),
    Rule::new(
        "fcntl(F_SET_RW_HINT)",
        libc::SYS_fcntl,
        Eq32 {
            arg: 1,
            value: 1036,
        },
        "a write-life hint stored on the inode",
    ),
    Rule::new(
        "ioctl(TIOCEXCL)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: libc::TIOCEXCL as u32,
        },
        "exclusive mode on the user's terminal: nothing else may open it afterwards",
    ),
    // outside review r51 F2: the terminal the command holds is the user's (it cannot open a pty
    // of its own), and a new window size makes the kernel send SIGWINCH to that terminal's
    // foreground job, outside the sandbox
    Rule::new(
        "ioctl(TIOCSWINSZ)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: libc::TIOCSWINSZ as u32,
        },
        "a window size set on the user's terminal signals its foreground job (SIGWINCH), \
         outside the sandbox",
    ),
];

/// Compile the table (and the shared ABI filter) before anything is restricted.
pub fn compile(network: bool) -> Result<Filter, SeccompError> {
    Filter::compile(&table(network))
}

/// SysV IPC, denied when the sandbox has no IPC namespace of its own (with one, the command
/// sees only its own segments, queues and semaphores, and these calls work).
pub const SYSV_IPC: &[Rule] = &[
    Rule::new(
        "shmget",
        libc::SYS_shmget,
        Always,
        "no IPC namespace: SysV shared memory of processes outside is reachable by key",
    ),
    Rule::new("shmat", libc::SYS_shmat, Always, "see shmget"),
    Rule::new("shmctl", libc::SYS_shmctl, Always, "see shmget"),
    Rule::new("shmdt", libc::SYS_shmdt, Always, "see shmget"),
    Rule::new(
        "msgget",
        libc::SYS_msgget,
        Always,
        "no IPC namespace: SysV message queues of processes outside",
    ),
    Rule::new("msgsnd", libc::SYS_msgsnd, Always, "see msgget"),
    Rule::new("msgrcv", libc::SYS_msgrcv, Always, "see msgget"),
    Rule::new("msgctl", libc::SYS_msgctl, Always, "see msgget"),
    Rule::new(
        "semget",
        libc::SYS_semget,
        Always,
        "no IPC namespace: SysV semaphores of processes outside",
    ),
    Rule::new("semop", libc::SYS_semop, Always, "see semget"),
    Rule::new("semtimedop", libc::SYS_semtimedop, Always, "see semget"),
    Rule::new("semctl", libc::SYS_semctl, Always, "see semget"),
];

/// POSIX message queues, denied when the sandbox has no IPC namespace of its own (outside
/// review r14 F1): `mq_open(O_CREAT)` creates the queue in the machine's IPC namespace *before*
/// Landlock refuses the open of its mqueue file (`EACCES`), so the queue outlived the sandbox
/// with the command's umask (0 → `0666`) and a later program of the user that opened it by
/// name talked to every local user through it. Refused before the kernel creates anything,
/// with the other calls of the family for completeness (as the SysV calls are). With an IPC
/// namespace the command's queues die with it and these calls work.
pub const POSIX_MQ: &[Rule] = &[
    Rule::new(
        "mq_open",
        libc::SYS_mq_open,
        Always,
        "no IPC namespace: a POSIX message queue is created in the machine's IPC namespace \
         (and outlives the sandbox) before Landlock refuses its open",
    ),
    Rule::new("mq_unlink", libc::SYS_mq_unlink, Always, "see mq_open"),
    Rule::new(
        "mq_timedsend",
        libc::SYS_mq_timedsend,
        Always,
        "see mq_open",
    ),
    Rule::new(
        "mq_timedreceive",
        libc::SYS_mq_timedreceive,
        Always,
        "see mq_open",
    ),
    Rule::new("mq_notify", libc::SYS_mq_notify, Always, "see mq_open"),
    Rule::new(
        "mq_getsetattr",
        libc::SYS_mq_getsetattr,
        Always,
        "see mq_open",
    ),
];

/// Calls that act on another process named by pid, denied (unless the pid is 0, the caller)
/// when there is no pid namespace: Landlock scopes signals but not these, and without a pid
/// namespace the command can name every process of the same uid (round-5 review F8: `prlimit
/// --cpu=1` killed an outside process and the launcher; renice and affinity changed them).
pub const OTHER_PROCESSES: &[Rule] = &[
    Rule::new(
        "prlimit64",
        libc::SYS_prlimit64,
        NotIn32 {
            arg: 0,
            allowed: &[0],
        },
        "no pid namespace: resource limits of other processes (RLIMIT_CPU kills them)",
    ),
    Rule::new(
        "setpriority",
        libc::SYS_setpriority,
        NotIn32 {
            arg: 1,
            allowed: &[0],
        },
        "no pid namespace: nice value of other processes, groups or the whole user",
    ),
    Rule::new(
        "setpriority(PRIO_PGRP/PRIO_USER)",
        libc::SYS_setpriority,
        NotIn32 {
            arg: 0,
            allowed: &[PRIO_PROCESS],
        },
        "no pid namespace: who = 0 means the caller's group or uid, i.e. every process of the user (round-8 review F3)",
    ),
    Rule::new(
        "sched_setaffinity",
        libc::SYS_sched_setaffinity,
        NotIn32 {
            arg: 0,
            allowed: &[0],
        },
        "no pid namespace: CPU affinity of other processes",
    ),
    Rule::new(
        "sched_setscheduler",
        libc::SYS_sched_setscheduler,
        NotIn32 {
            arg: 0,
            allowed: &[0],
        },
        "no pid namespace: scheduling policy of other processes",
    ),
    Rule::new(
        "sched_setparam",
        libc::SYS_sched_setparam,
        NotIn32 {
            arg: 0,
            allowed: &[0],
        },
        "see sched_setscheduler",
    ),
    Rule::new(
        "sched_setattr",
        libc::SYS_sched_setattr,
        NotIn32 {
            arg: 0,
            allowed: &[0],
        },
        "see sched_setscheduler",
    ),
    Rule::new(
        "ioprio_set",
        libc::SYS_ioprio_set,
        NotIn32 {
            arg: 1,
            allowed: &[0],
        },
        "no pid namespace: I/O priority of other processes",
    ),
    Rule::new(
        "migrate_pages",
        libc::SYS_migrate_pages,
        NotIn32 {
            arg: 0,
            allowed: &[0],
        },
        "no pid namespace: memory placement of other processes",
    ),
    Rule::new(
        "move_pages",
        libc::SYS_move_pages,
        NotIn32 {
            arg: 0,
            allowed: &[0],
        },
        "see migrate_pages",
    ),
    Rule::new(
        "process_madvise",
        libc::SYS_process_madvise,
        Always,
        "no pid namespace: memory advice to other processes (by pidfd)",
    ),
];

/// File metadata calls, denied when there is no mount namespace and no writable root (the
/// read-only policy): Landlock does not cover them and seccomp cannot see their paths. With a
/// writable root the sandbox refuses instead (see `metadata.rs`).
pub const METADATA: &[Rule] = &[
    #[cfg(target_arch = "x86_64")]
    Rule::new(
        "chmod",
        libc::SYS_chmod,
        Always,
        "no mount namespace: mode of files outside the roots (Landlock does not cover it)",
    ),
    Rule::new("fchmod", libc::SYS_fchmod, Always, "see chmod"),
    Rule::new("fchmodat", libc::SYS_fchmodat, Always, "see chmod"),
    Rule::new("fchmodat2", SYS_FCHMODAT2, Always, "see chmod"),
    #[cfg(target_arch = "x86_64")]
    Rule::new(
        "chown",
        libc::SYS_chown,
        Always,
        "no mount namespace: owner of files outside the roots",
    ),
    #[cfg(target_arch = "x86_64")]
    Rule::new("lchown", libc::SYS_lchown, Always, "see chown"),
    Rule::new("fchown", libc::SYS_fchown, Always, "see chown"),
    Rule::new("fchownat", libc::SYS_fchownat, Always, "see chown"),
    #[cfg(target_arch = "x86_64")]
    Rule::new(
        "utime",
        libc::SYS_utime,
        Always,
        "no mount namespace: timestamps of files outside the roots",
    ),
    #[cfg(target_arch = "x86_64")]
    Rule::new("utimes", libc::SYS_utimes, Always, "see utime"),
    #[cfg(target_arch = "x86_64")]
    Rule::new("futimesat", libc::SYS_futimesat, Always, "see utime"),
    Rule::new("utimensat", libc::SYS_utimensat, Always, "see utime"),
    Rule::new(
        "setxattr",
        libc::SYS_setxattr,
        Always,
        "no mount namespace: extended attributes and ACLs (system.posix_acl_*) outside the roots",
    ),
    Rule::new("lsetxattr", libc::SYS_lsetxattr, Always, "see setxattr"),
    Rule::new("fsetxattr", libc::SYS_fsetxattr, Always, "see setxattr"),
    Rule::new("setxattrat", SYS_SETXATTRAT, Always, "see setxattr"),
    Rule::new("removexattr", libc::SYS_removexattr, Always, "see setxattr"),
    Rule::new(
        "lremovexattr",
        libc::SYS_lremovexattr,
        Always,
        "see setxattr",
    ),
    Rule::new(
        "fremovexattr",
        libc::SYS_fremovexattr,
        Always,
        "see setxattr",
    ),
    Rule::new("removexattrat", SYS_REMOVEXATTRAT, Always, "see setxattr"),
    Rule::new(
        "file_setattr",
        SYS_FILE_SETATTR,
        Always,
        "no mount namespace: inode flags and project ids outside the roots (Linux 6.17; second \
         review round F6)",
    ),
    Rule::new(
        "ioctl(FS_IOC_SETFLAGS)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: FS_IOC_SETFLAGS,
        },
        "no mount namespace: chattr flags (immutable, append-only, nodump) outside the roots",
    ),
    Rule::new(
        "ioctl(FS_IOC32_SETFLAGS)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: FS_IOC32_SETFLAGS,
        },
        "see FS_IOC_SETFLAGS (the 32-bit spelling)",
    ),
    Rule::new(
        "ioctl(FS_IOC_FSSETXATTR)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: FS_IOC_FSSETXATTR,
        },
        "see FS_IOC_SETFLAGS (the xfs-style spelling, also project ids)",
    ),
];

/// `_IOW('f', 2, long)`, `_IOW('f', 2, int)`, `_IOW('X', 32, struct fsxattr)` (linux/fs.h).
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
const SYS_FILE_SETATTR: libc::c_long = 469;

/// Numbers shared by every architecture since Linux 5.1's unified table (not in every libc).
const SYS_FCHMODAT2: libc::c_long = 452;
const SYS_SETXATTRAT: libc::c_long = 463;
const SYS_REMOVEXATTRAT: libc::c_long = 466;

/// The table when the sandbox runs without namespaces: [`table`] plus [`SYSV_IPC`],
/// [`POSIX_MQ`] and [`OTHER_PROCESSES`], plus
/// [`METADATA`] when the policy has no writable root.
pub fn table_without_namespaces(network: bool, no_writable_root: bool) -> Vec<Rule> {
    let mut t = table(network);
    t.extend_from_slice(SYSV_IPC);
    t.extend_from_slice(POSIX_MQ);
    t.extend_from_slice(OTHER_PROCESSES);
    if no_writable_root {
        t.extend_from_slice(METADATA);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prio_process_is_the_c_librarys() {
        #[allow(clippy::unnecessary_cast)]
        let libc_value = libc::PRIO_PROCESS as u32;
        assert_eq!(PRIO_PROCESS, libc_value);
    }

    #[test]
    fn both_tables_compile_and_every_rule_has_a_reason() {
        for network in [false, true] {
            for r in table(network) {
                assert!(!r.reason.is_empty(), "{}", r.name);
            }
            assert_eq!(
                compile(network).unwrap().rule_count(),
                BASELINE.len() + 2 + MODES.len()
            );
        }
    }
}
