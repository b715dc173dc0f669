//! The decision and the connect, performed by the launcher for the sandboxed process.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sandbox_policy::EffectivePolicy;

use super::DENIED_ERRNO;
use super::sys;

/// What the supervisor allows.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Writable roots: sockets whose real location is below one are the command's own.
    roots: Vec<PathBuf>,
    /// Below a root but not the command's (read-only carve-outs such as `.git`, deny-read).
    excluded: Vec<PathBuf>,
    /// Sockets named by the policy (canonical where they exist), with the identity (device,
    /// inode) of the socket that was there at the start.
    allowed: Vec<(PathBuf, Option<(u64, u64)>)>,
    /// Outbound network allowed (non-unix families are connected by the supervisor then).
    network: bool,
    /// The network allow-list's proxy: with the network off, the one inet address a connect
    /// may reach ([`crate::net_proxy`]).
    pub proxy: Option<std::net::SocketAddr>,
    /// When the sandbox was set up (wall clock, seconds and nanoseconds): a socket below a
    /// writable root is the command's own only if it was born after this.
    started: (i64, u32),
    /// The sandbox's mounts, for metadata changes ([`crate::meta_guard`]).
    mounts: std::sync::Arc<crate::meta_guard::Mounts>,
    /// The name guard is on: no metadata change below a protected name or inside a repository
    /// found by its contents either (outside review r22 F4).
    pub(crate) guard: bool,
    /// The deny-read paths: no directory above one gains group or other read or search bits
    /// ([`crate::meta_guard`]; outside review r41 F4).
    pub(crate) denied: std::sync::Arc<Vec<PathBuf>>,
    /// The socket files (device, inode) the command listened on ([`handle_listen`]): the only
    /// sockets below a writable root that are its own (outside review r29 F1: an `ssh-agent`
    /// the user started from a new terminal during the run, a socket of the user's own, new,
    /// under `/tmp`, listed and used the user's keys). Shared by the clones each thread gets.
    listened: std::sync::Arc<std::sync::Mutex<Listened>>,
    /// The policy's temporary roots: the command listens there only below [`Rules::own_tmp`]
    /// (`crate::own_tmp`; outside review r63 F1-F4).
    temp_roots: Vec<PathBuf>,
    /// The command's own directory in a temporary root (its `$TMPDIR`).
    pub own_tmp: Option<PathBuf>,
}

/// The socket files the command listened on, each **held open** (`O_PATH`) so that its inode
/// number cannot be given to another file while it is recorded (outside review r30 F3: a loop
/// that bound, listened on, closed and removed sockets in `/tmp` recorded numbers ext4 then
/// gave to the user's new `ssh-agent` socket, which the command reached). At most
/// [`MAX_LISTENED`]; the oldest is forgotten first (then no longer the command's own).
#[derive(Debug)]
pub struct Listened {
    held: std::collections::HashMap<(u64, u64), std::fs::File>,
    order: std::collections::VecDeque<(u64, u64)>,
    /// How many are held at most ([`Rules::make_room_for_listened`]).
    cap: usize,
}

impl Default for Listened {
    fn default() -> Self {
        Listened {
            held: Default::default(),
            order: Default::default(),
            cap: MAX_LISTENED,
        }
    }
}

/// Most socket files held for [`Listened`] (descriptors of the launcher).
pub const MAX_LISTENED: usize = 1024;

/// Descriptors the launcher keeps for everything else (listener, channels, pidfds and files of
/// calls in progress) when the open-file limit also bounds [`Listened`].
const OTHER_DESCRIPTORS: u64 = 256;

/// The outcome for one socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Named in the allow-list.
    Allowed,
    /// Below a writable root: the command's own only if it listened on it.
    InWritableRoot,
    /// Named in the allow-list, below a writable root, absent at the start: the socket born
    /// there during the run (not an older one linked or renamed onto the name).
    AllowedIfNew,
    /// Anything else.
    Denied,
}

impl Rules {
    pub(super) fn new(policy: &EffectivePolicy, allow: &[PathBuf]) -> Self {
        let mut excluded: Vec<PathBuf> = policy.deny_read.clone();
        for r in &policy.writable_roots {
            excluded.extend(r.read_only_subpaths.iter().map(|s| s.path.clone()));
        }
        Rules {
            roots: policy
                .writable_roots
                .iter()
                .map(|r| r.root.clone())
                .collect(),
            excluded,
            allowed: allow
                .iter()
                .map(|p| {
                    let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                    let id = std::fs::symlink_metadata(&real)
                        .ok()
                        .map(|m| (m.dev(), m.ino()));
                    (real, id)
                })
                .collect(),
            network: policy.network,
            proxy: None,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_nanos())),
            mounts: Default::default(),
            guard: false,
            denied: std::sync::Arc::new(policy.deny_read.clone()),
            listened: Default::default(),
            temp_roots: policy.temp_roots.clone(),
            own_tmp: None,
        }
    }

    /// Whether the socket file `held` (opened at its bound path) is where the command may
    /// listen ([`crate::own_tmp::may_listen_at`], by its canonical path; a file whose path
    /// cannot be read is refused).
    fn may_listen_at(&self, held: &std::fs::File) -> bool {
        use std::os::fd::AsRawFd;
        if self.temp_roots.is_empty() {
            return true;
        }
        match std::fs::read_link(format!("/proc/self/fd/{}", held.as_raw_fd())) {
            Ok(real) if real.is_absolute() => crate::own_tmp::may_listen_at(
                &real,
                &self.roots,
                &self.temp_roots,
                self.own_tmp.as_deref(),
            ),
            _ => false,
        }
    }

    /// Whether the command listened on the socket file `id` (device, inode) during the run.
    pub fn listened_on(&self, id: (u64, u64)) -> bool {
        self.listened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .held
            .contains_key(&id)
    }

    /// In the launcher, before serving: room in the open-file limit for the socket files
    /// [`Listened`] holds. The soft limit is raised by [`MAX_LISTENED`] (up to the hard limit),
    /// and the cap is what then fits beside [`OTHER_DESCRIPTORS`] (outside review r31 F2: at a
    /// soft limit of 1024 the launcher ran out of descriptors at the command's 1010th `listen`,
    /// after which every `connect` failed, to its own sockets too).
    pub fn make_room_for_listened(&self) {
        let Ok((soft, hard)) = crate::sys::nofile_limit() else {
            return;
        };
        let want = soft.saturating_add(MAX_LISTENED as u64).min(hard);
        let soft = if want > soft && crate::sys::set_nofile_limit(want, hard).is_ok() {
            want
        } else {
            soft
        };
        let fits = usize::try_from(soft.saturating_sub(OTHER_DESCRIPTORS)).unwrap_or(usize::MAX);
        self.listened.lock().unwrap_or_else(|e| e.into_inner()).cap = fits.min(MAX_LISTENED);
    }

    /// Records the socket file `id`, held open by `file` (see [`Listened`]).
    fn record_listen(&self, id: (u64, u64), file: std::fs::File) {
        let mut l = self.listened.lock().unwrap_or_else(|e| e.into_inner());
        if l.held.insert(id, file).is_none() {
            l.order.push_back(id);
        }
        while l.order.len() > l.cap {
            if let Some(old) = l.order.pop_front() {
                l.held.remove(&old);
            }
        }
    }

    /// A socket below a writable root that existed before the sandbox started belongs to a
    /// process outside (a tmux server, an ssh or gpg agent, X11, D-Bus, a database under
    /// `/tmp`, all default locations inside the default `/tmp` root): not the command's own
    /// (third review round F2: `tmux run-shell` through `/tmp/tmux-UID/default` ran outside).
    /// Decided on the inode's birth time; a filesystem that does not record it is denied.
    pub fn born_during_the_run(&self, birth: Option<(i64, u32)>) -> bool {
        birth.is_some_and(|b| b >= self.started)
    }

    /// Decide on a socket's real (fully resolved) location and identity (device, inode).
    ///
    /// A named socket below a writable root counts only as the socket that was there at the
    /// start (same inode), or, if there was none, one born during the run: otherwise the command
    /// could hard-link or rename an older socket (a tmux server's) onto the allowed name (fifth
    /// review round F2).
    pub fn decide(&self, real: &Path, id: (u64, u64)) -> Decision {
        let below = |p: &PathBuf| real.starts_with(p);
        let in_root = self.roots.iter().any(below);
        if let Some((_, start_id)) = self.allowed.iter().find(|(a, _)| a == real) {
            return match (in_root, start_id) {
                (false, _) => Decision::Allowed,
                (true, Some(s)) if *s == id => Decision::Allowed,
                (true, Some(_)) => Decision::Denied,
                (true, None) => Decision::AllowedIfNew,
            };
        }
        if in_root && !self.excluded.iter().any(below) {
            return Decision::InWritableRoot;
        }
        Decision::Denied
    }
}

/// Serve notifications until no process uses the filter any more (several threads may serve the
/// same listener: each notification goes to one of them). Without the name guard: the launcher
/// receives them itself.
pub(super) fn run(listener: &OwnedFd, rules: &Rules) {
    loop {
        match sys::wait_readable(listener) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        // ENOENT: the thread was killed meanwhile; nothing to answer.
        match sys::notif_recv(listener) {
            Ok(n) => dispatch(listener, &n, rules),
            Err(_) => return,
        }
    }
}

/// Bytes of one forwarded notification: `struct seccomp_notif`, field by field, little-endian.
const NOTIF_BYTES: usize = 80;

fn encode_notif(n: &libc::seccomp_notif) -> [u8; NOTIF_BYTES] {
    let mut b = [0u8; NOTIF_BYTES];
    b[0..8].copy_from_slice(&n.id.to_le_bytes());
    b[8..12].copy_from_slice(&n.pid.to_le_bytes());
    b[12..16].copy_from_slice(&n.flags.to_le_bytes());
    b[16..20].copy_from_slice(&n.data.nr.to_le_bytes());
    b[20..24].copy_from_slice(&n.data.arch.to_le_bytes());
    b[24..32].copy_from_slice(&n.data.instruction_pointer.to_le_bytes());
    for (i, a) in n.data.args.iter().enumerate() {
        b[32 + 8 * i..40 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    b
}

fn decode_notif(b: &[u8]) -> Option<libc::seccomp_notif> {
    if b.len() != NOTIF_BYTES {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = u64_at(32 + 8 * i);
    }
    Some(libc::seccomp_notif {
        id: u64_at(0),
        pid: u32_at(8),
        flags: u32_at(12),
        data: libc::seccomp_data {
            nr: u32_at(16) as i32,
            arch: u32_at(20),
            instruction_pointer: u64_at(24),
            args,
        },
    })
}

/// In the name guard's creator, which received `n` on `listener`: hand it to the launcher over
/// `chan` with a pidfd of the thread, and wait until the launcher has answered it. The pidfd is
/// opened, then the notification checked still pending: the thread is the one that made the
/// call (no pid reuse in between). `Err(errno)`: answer the call with it here.
pub(crate) fn forward(
    listener: &OwnedFd,
    n: &libc::seccomp_notif,
    chan: &OwnedFd,
) -> Result<(), i32> {
    let pidfd = pidfd_of_thread(n.pid as libc::pid_t).map_err(|_| DENIED_ERRNO)?;
    if !sys::notif_id_valid(listener, n.id) {
        return Err(libc::EINTR);
    }
    crate::name_guard::sys::send(chan.as_fd(), &encode_notif(n), &[pidfd.as_fd()])
        .map_err(|_| DENIED_ERRNO)?;
    let mut ack = [0u8; 1];
    match crate::name_guard::sys::recv(chan.as_fd(), &mut ack) {
        Ok(Some((1, _))) => Ok(()),
        _ => Err(DENIED_ERRNO),
    }
}

/// Answer one notification in the launcher (`n.pid` names the thread in this process's pid
/// namespace and `/proc`).
fn dispatch(listener: &OwnedFd, n: &libc::seccomp_notif, rules: &Rules) {
    let nr = i64::from(n.data.nr);
    if nr == crate::watch_guard::CALL {
        let _ = match crate::watch_guard::handle(listener, n, &rules.denied) {
            Ok(wd) => sys::notif_send_value(listener, n.id, wd),
            Err(errno) => sys::notif_send(listener, n.id, errno),
        };
        return;
    }
    let errno = if crate::meta_guard::is_mediated(nr) {
        crate::meta_guard::handle(listener, n, &rules.mounts, rules.guard, &rules.denied)
    } else if nr == libc::SYS_listen {
        handle_listen(listener, n, rules)
    } else if nr == libc::SYS_connect {
        handle(listener, n, rules)
    } else {
        // a file call of the name guard, whose creator is not running: refused (fail closed)
        libc::ENOSYS
    };
    let _ = sys::notif_send(listener, n.id, errno);
}

/// Serve what the name guard's creator forwards on `chan` (it receives the notifications
/// itself), until it closes the channel.
pub(super) fn run_forwarded(listener: &OwnedFd, rules: &Rules, chan: &OwnedFd) {
    let mut buf = [0u8; NOTIF_BYTES + 1];
    while forward_one(listener, rules, chan, &mut buf) {}
}

/// Receive one forwarded notification on `chan`, answer it and acknowledge. `false`: the
/// channel is closed (or sent something undecodable): stop serving it.
fn forward_one(
    listener: &OwnedFd,
    rules: &Rules,
    chan: &OwnedFd,
    buf: &mut [u8; NOTIF_BYTES + 1],
) -> bool {
    let (len, mut fds) = match crate::name_guard::sys::recv(chan.as_fd(), buf) {
        Ok(Some(m)) => m,
        Ok(None) | Err(_) => return false,
    };
    let Some(mut n) = decode_notif(&buf[..len]) else {
        return false;
    };
    // the thread's number here (a thread gone meanwhile has nothing to answer; any other
    // failure refuses the call rather than leave it waiting)
    match fds.pop().map(|p| pidfd_tid(&p)) {
        Some(Ok(tid)) => {
            n.pid = tid as u32;
            dispatch(listener, &n, rules);
        }
        _ => {
            let _ = sys::notif_send(listener, n.id, DENIED_ERRNO);
        }
    }
    crate::name_guard::sys::send(chan.as_fd(), &[1], &[]).is_ok()
}

/// Serve every channel of the name guard's creator from one thread at first: the first channel
/// here, and a channel the creator starts using (its threads start as calls need them:
/// `name_guard::creator`) gets its first call answered here and then a thread of its own. A
/// command that never makes a forwarded call costs one thread, not four; once a channel has
/// its thread, its calls cost what they cost before. A channel whose thread cannot be started
/// is served here too (one `poll` per call), never dropped unserved; one that closes unused
/// is dropped.
pub(super) fn run_forwarded_all(
    listener: &std::sync::Arc<OwnedFd>,
    rules: &std::sync::Arc<Rules>,
    channels: Vec<OwnedFd>,
) {
    let mut channels = channels.into_iter();
    let mut here: Vec<OwnedFd> = channels.next().into_iter().collect();
    let mut spare: Vec<OwnedFd> = channels.collect();
    let mut buf = [0u8; NOTIF_BYTES + 1];
    loop {
        if spare.is_empty() && here.len() <= 1 {
            if let Some(chan) = here.first() {
                run_forwarded(listener, rules, chan);
            }
            return;
        }
        let watched: Vec<BorrowedFd<'_>> =
            here.iter().chain(spare.iter()).map(|c| c.as_fd()).collect();
        let ready = match sys::wait_any_ready(&watched) {
            Ok(r) => r,
            // poll itself failed (ENOMEM): try again rather than leave a channel unserved
            Err(_) => continue,
        };
        drop(watched);
        let (ready_here, ready_spare) = ready.split_at(here.len());
        let mut kept_here = Vec::with_capacity(here.len());
        for (chan, &is_ready) in here.drain(..).zip(ready_here) {
            if !is_ready || forward_one(listener, rules, &chan, &mut buf) {
                kept_here.push(chan);
            }
        }
        let mut kept_spare = Vec::with_capacity(spare.len());
        for (chan, &is_ready) in spare.drain(..).zip(ready_spare) {
            if !is_ready {
                kept_spare.push(chan);
                continue;
            }
            // its first call served here; closed (the creator exiting: every channel hangs
            // up at the end of each run) it is dropped without a thread
            if !forward_one(listener, rules, &chan, &mut buf) {
                continue;
            }
            if let Err(chan) = spawn_forwarder(listener, rules, chan) {
                kept_here.push(chan);
            }
        }
        here = kept_here;
        spare = kept_spare;
        if here.is_empty() && spare.is_empty() {
            return;
        }
    }
}

/// One thread serving `chan` ([`run_forwarded`]); the channel back when the thread could not
/// be started.
fn spawn_forwarder(
    listener: &std::sync::Arc<OwnedFd>,
    rules: &std::sync::Arc<Rules>,
    chan: OwnedFd,
) -> Result<(), OwnedFd> {
    let (l, r) = (listener.clone(), rules.clone());
    let chan = std::sync::Arc::new(chan);
    let c = chan.clone();
    match std::thread::Builder::new()
        .name("sandbox-notify".into())
        .spawn(move || run_forwarded(&l, &r, &c))
    {
        Ok(_) => Ok(()),
        // the closure (and its reference) went with the failed spawn: `chan` is the only one
        Err(_) => match std::sync::Arc::try_unwrap(chan) {
            Ok(chan) => Err(chan),
            Err(_) => Ok(()),
        },
    }
}

/// A path-bound unix socket may listen only when its file is not writable by others: `bind`
/// applies the command's umask, and with umask 0 another local user connected to a socket in
/// `/tmp` and read the user's files through it (outside review r11 F5). The file is found at
/// the bound path in the child's view (its root, or its cwd for a relative path) and must be
/// the very node the socket was bound to (`unix_diag`'s device and inode; a node that cannot be
/// matched is refused). After the check the node cannot gain `S_IWOTH`: `chmod` with it and
/// ACLs are refused in the sandbox. `path` is the socket's bound path (`getsockname`).
fn socket_file_private(
    tid: libc::pid_t,
    sock: &OwnedFd,
    path: &[u8],
) -> Result<((u64, u64), std::fs::File), i32> {
    use std::os::unix::ffi::OsStrExt;
    let Some((kdev, ino)) = sys::unix_bound_node(sock).map_err(|_| DENIED_ERRNO)? else {
        return Err(DENIED_ERRNO);
    };
    let mut seen = std::ffi::OsString::from(if path.first() == Some(&b'/') {
        format!("/proc/{tid}/root")
    } else {
        format!("/proc/{tid}/cwd/")
    });
    seen.push(std::ffi::OsStr::from_bytes(path));
    // held open from here (the inode the socket was bound to: its number stays this file's)
    let held = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(&seen)
            .map_err(|_| DENIED_ERRNO)?
    };
    let m = held.metadata().map_err(|_| DENIED_ERRNO)?;
    if !(sandbox_policy::unix_diag::kernel_dev(m.dev()) == kdev && m.ino() as u32 == ino) {
        return Err(DENIED_ERRNO);
    }
    if m.mode() & libc::S_IWOTH != 0 {
        return Err(DENIED_ERRNO);
    }
    // One name only (outside review r66 F1: bound by a relative name in /tmp, hard-linked into
    // $TMPDIR, listened on after a `chdir` there: the check found the $TMPDIR name and the
    // socket served at /tmp/.s.PGSQL.5432 too). A second name made after the listen cannot be
    // in a temporary root's shared part (the name guard refuses it there).
    if m.nlink() != 1 {
        return Err(DENIED_ERRNO);
    }
    // An ACL grants named users and groups access without S_IWOTH: a default ACL on the
    // directory (`setfacl -d -m u:other:rwx`) is inherited by the socket file (outside review
    // r14 F3: another user connected and read the user's files). Any ACL refuses.
    if sys::has_access_acl(&seen).unwrap_or(true) {
        return Err(DENIED_ERRNO);
    }
    // Group-writable: only the user's own private group (their primary group, listed with no
    // other member), as `umask 002` on a user-private-group system gives; a shared group (a
    // setgid directory's) lets its members connect.
    if m.mode() & libc::S_IWGRP != 0 && !private_group(m.gid()) {
        return Err(DENIED_ERRNO);
    }
    Ok(((m.dev(), m.ino()), held))
}

/// Whether `gid` is the launcher's primary group and `/etc/group` lists it with no member but
/// the launcher's user (a user private group). Unknown (not in `/etc/group`): not private.
/// `/etc/passwd` and `/etc/group` are read once per process (the question is asked at each
/// creation in a setgid directory and each mode change): a group root makes shared during the
/// run is still taken as private until the next run.
pub(crate) fn private_group(gid: u32) -> bool {
    static MINE_IS_PRIVATE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let my_gid = crate::sys::getgid();
    gid == my_gid && *MINE_IS_PRIVATE.get_or_init(|| primary_group_is_private(my_gid))
}

fn primary_group_is_private(my_gid: u32) -> bool {
    let my_uid = crate::sys::getuid();
    let me = std::fs::read_to_string("/etc/passwd").ok().and_then(|t| {
        t.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[2].parse() == Ok(my_uid)).then(|| f[0].to_string())
        })
    });
    let Ok(groups) = std::fs::read_to_string("/etc/group") else {
        return false;
    };
    groups.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        f.len() == 4
            && f[2].parse() == Ok(my_gid)
            && f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .all(|m| Some(m) == me.as_deref())
    })
}

/// `listen`, performed on the child's socket: a unix socket unless it is bound to an abstract
/// name (reachable by every process of the machine: `EACCES`); an inet socket only with the network on and no
/// allow-list (with one it would autobind and accept from anywhere).
fn handle_listen(listener: &OwnedFd, n: &libc::seccomp_notif, rules: &Rules) -> i32 {
    let tid = n.pid as libc::pid_t;
    let Ok(pidfd) = open_pidfd(tid) else {
        return libc::ESRCH;
    };
    let sock = match sys::pidfd_getfd(&pidfd, n.data.args[0] as i32) {
        Ok(s) => s,
        Err(e) => return e.raw_os_error().unwrap_or(libc::EBADF),
    };
    if !sys::notif_id_valid(listener, n.id) {
        return libc::EINTR;
    }
    match sys::socket_domain(&sock) {
        Ok(d) if d == libc::AF_UNIX => match sys::unix_name(&sock) {
            Ok(sys::UnixName::Abstract) => DENIED_ERRNO,
            Ok(sys::UnixName::Unbound) => sys::listen_errno(&sock, n.data.args[1] as i32),
            Ok(sys::UnixName::Path(path)) => match socket_file_private(tid, &sock, &path) {
                Ok((_, held)) if !rules.may_listen_at(&held) => DENIED_ERRNO,
                Ok((id, held)) => {
                    // recorded first: a client may connect as soon as the listen returns
                    rules.record_listen(id, held);
                    sys::listen_errno(&sock, n.data.args[1] as i32)
                }
                Err(e) => e,
            },
            Err(e) => e.raw_os_error().unwrap_or(libc::ENOTSOCK),
        },
        Ok(d)
            if (d == libc::AF_INET || d == libc::AF_INET6)
                && rules.network
                && rules.proxy.is_none() =>
        {
            sys::listen_errno(&sock, n.data.args[1] as i32)
        }
        Ok(_) => DENIED_ERRNO,
        Err(e) => e.raw_os_error().unwrap_or(libc::ENOTSOCK),
    }
}

const AF_UNIX: u16 = libc::AF_UNIX as u16;
const SUN_PATH_OFFSET: usize = 2;

/// Returns the errno of the connect (0 on success).
fn handle(listener: &OwnedFd, n: &libc::seccomp_notif, rules: &Rules) -> i32 {
    if i64::from(n.data.nr) != libc::SYS_connect {
        return libc::ENOSYS;
    }
    let tid = n.pid as libc::pid_t;
    let target_fd = n.data.args[0] as i32;
    let addr = n.data.args[1];
    let len = n.data.args[2] as u32 as usize;
    if len > 128 {
        return libc::EINVAL;
    }
    // The address, copied ONCE; everything below uses this copy.
    let mut buf = vec![0u8; len];
    if len > 0 {
        match sys::read_remote(tid, addr, &mut buf) {
            Ok(got) if got == len => {}
            Ok(_) => return libc::EFAULT,
            Err(_) => return libc::EFAULT,
        }
    }
    let Ok(pidfd) = open_pidfd(tid) else {
        return libc::ESRCH;
    };
    let sock = match sys::pidfd_getfd(&pidfd, target_fd) {
        Ok(s) => s,
        Err(e) => return e.raw_os_error().unwrap_or(libc::EBADF),
    };
    // Relative paths resolve against the child's cwd (opened now, checked below).
    let cwd = sys::open_path(None, &proc_path(tid, "cwd"));
    // The thread is still blocked in this very connect: the memory we read, the pid, its fd
    // table and its cwd belonged to it (no pid reuse in between).
    if !sys::notif_id_valid(listener, n.id) {
        return libc::EINTR;
    }
    if len < SUN_PATH_OFFSET || u16::from_ne_bytes([buf[0], buf[1]]) != AF_UNIX {
        // Not a unix address (or AF_UNSPEC / too short): connect the copied bytes ourselves.
        if rules.network || rules.proxy.is_some_and(|p| inet_addr(&buf) == Some(p)) {
            return sys::connect_bytes(&sock, &buf);
        }
        return DENIED_ERRNO;
    }
    let path = &buf[SUN_PATH_OFFSET..];
    if path.is_empty() {
        return sys::connect_bytes(&sock, &buf); // unnamed: EINVAL from the kernel
    }
    if path[0] == 0 {
        // Abstract: the child's Landlock scope (ABI 6) cannot be applied by the supervisor,
        // which is outside the domain; deny rather than widen, with the errno the scope gives.
        return libc::EPERM;
    }
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    let path = &path[..end];
    let Ok(c_path) = CString::new(path) else {
        return libc::EINVAL;
    };
    let dir = if path[0] == b'/' {
        None
    } else {
        match &cwd {
            Ok(d) => Some(d),
            Err(_) => return DENIED_ERRNO,
        }
    };
    // Resolved by the supervisor (its own view, symlinks followed, /proc magic links not); the
    // fd pins the inode.
    let inode = match sys::open_path_no_magiclinks(dir, &c_path) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return DENIED_ERRNO,
        Err(e) => return e.raw_os_error().unwrap_or(DENIED_ERRNO),
    };
    let st = match sys::fstat(&inode) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFSOCK => st,
        Ok(_) => return libc::ECONNREFUSED,
        Err(_) => return DENIED_ERRNO,
    };
    let fd_link = format!("/proc/self/fd/{}", inode.as_raw_fd());
    let Ok(real) = std::fs::read_link(&fd_link) else {
        return DENIED_ERRNO;
    };
    // The decision is on a path string: it must name this very inode in our mount namespace
    // (a socket reached through another namespace reads back as a path that names something
    // else here, or nothing).
    match std::fs::symlink_metadata(&real) {
        Ok(m) if m.dev() == st.st_dev && m.ino() == st.st_ino => {}
        _ => return DENIED_ERRNO,
    }
    match rules.decide(&real, (st.st_dev, st.st_ino)) {
        Decision::Denied => return DENIED_ERRNO,
        Decision::Allowed => {}
        Decision::AllowedIfNew => {
            // born during the run, and bound at this very name (outside review r62 F2: the
            // user's new ssh-agent socket renamed onto the allowed name was reached)
            if !rules.born_during_the_run(sys::birth_time(&inode).ok().flatten())
                || !sandbox_policy::unix_socket_bound_at(&real, (st.st_dev, st.st_ino))
            {
                return DENIED_ERRNO;
            }
        }
        Decision::InWritableRoot => {
            // the command's own: born during the run, and bound by this user (outside review
            // r27 F4: another local user's server, started under `/tmp` after the start, was
            // reached and handed the user's terminal and a writable file over `SCM_RIGHTS`)
            if st.st_uid != crate::sys::geteuid()
                || !rules.born_during_the_run(sys::birth_time(&inode).ok().flatten())
                || !rules.listened_on((st.st_dev, st.st_ino))
            {
                return DENIED_ERRNO;
            }
        }
    }
    // Connect through the pinned inode: the magic link cannot be swapped by the child.
    sys::connect_unix_path(&sock, fd_link.as_bytes())
}

/// An `AF_INET`/`AF_INET6` address (IPv4-mapped IPv6 as IPv4), from the copied bytes.
fn inet_addr(b: &[u8]) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    if family == libc::AF_INET as u16 && b.len() >= 8 {
        let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
        return Some(SocketAddr::new(IpAddr::V4(ip), port));
    }
    if family == libc::AF_INET6 as u16 && b.len() >= 24 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[8..24]);
        let ip = Ipv6Addr::from(o);
        let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
        return Some(SocketAddr::new(ip, port));
    }
    None
}

fn proc_path(pid: libc::pid_t, what: &str) -> CString {
    CString::new(format!("/proc/{pid}/{what}")).expect("no NUL in a /proc path")
}

/// A pidfd of thread `tid` itself (`PIDFD_THREAD`, Linux 6.9); before 6.9, of a thread-group
/// leader only (a plain `pidfd_open`). Never through `/proc`: in the name guard's creator the
/// `/proc` it sees may be the host's while `tid` is a number of the sandbox's pid namespace,
/// and a `/proc/<tid>` lookup would name another process.
pub(crate) fn pidfd_of_thread(tid: libc::pid_t) -> std::io::Result<OwnedFd> {
    sys::pidfd_open_thread(tid).or_else(|_| sys::pidfd_open(tid))
}

/// The number this process's `/proc` gives the thread behind `pidfd` (its fdinfo's `Pid:`,
/// which the kernel writes in the pid namespace of the procfs that is read).
pub(crate) fn pidfd_tid(pidfd: &OwnedFd) -> std::io::Result<libc::pid_t> {
    use std::os::fd::AsRawFd;
    let info = std::fs::read(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Pid:"))
        .and_then(|v| std::ffi::OsStr::from_bytes(v).to_str())
        .and_then(|v| v.trim().parse::<libc::pid_t>().ok())
        .filter(|&t| t > 0)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))
}

/// A pidfd for the process of thread `tid` (pidfd_open refuses non-leader tids before 6.9).
pub(crate) fn open_pidfd(tid: libc::pid_t) -> std::io::Result<OwnedFd> {
    match sys::pidfd_open(tid) {
        Ok(fd) => Ok(fd),
        Err(_) => {
            let status = std::fs::read(format!("/proc/{tid}/status"))?;
            let tgid = status
                .split(|&b| b == b'\n')
                .find_map(|l| l.strip_prefix(b"Tgid:"))
                .and_then(|v| std::ffi::OsStr::from_bytes(v).to_str())
                .and_then(|v| v.trim().parse::<libc::pid_t>().ok())
                .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
            sys::pidfd_open(tgid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_notification_round_trips_and_a_short_one_is_refused() {
        let n = libc::seccomp_notif {
            id: 0x0102_0304_0506_0708,
            pid: 4242,
            flags: 3,
            data: libc::seccomp_data {
                nr: libc::SYS_connect as i32,
                arch: 0xc000_003e,
                instruction_pointer: u64::MAX - 1,
                args: [1, 2, 3, u64::MAX, 5, 6],
            },
        };
        let b = encode_notif(&n);
        let d = decode_notif(&b).unwrap();
        assert_eq!((d.id, d.pid, d.flags), (n.id, n.pid, n.flags));
        assert_eq!((d.data.nr, d.data.arch), (n.data.nr, n.data.arch));
        assert_eq!(d.data.instruction_pointer, n.data.instruction_pointer);
        assert_eq!(d.data.args, n.data.args);
        assert!(decode_notif(&b[..NOTIF_BYTES - 1]).is_none());
    }

    #[test]
    fn a_threads_pidfd_gives_back_its_number_in_this_proc() {
        // a second thread: a pidfd of a thread that is not the leader needs PIDFD_THREAD
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // `/proc/thread-self` reads back as `PID/task/TID`
            let link = std::fs::read_link("/proc/thread-self").unwrap();
            let tid: libc::pid_t = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
            tx.send(tid).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        let pidfd = pidfd_of_thread(tid).unwrap();
        assert_eq!(pidfd_tid(&pidfd).unwrap(), tid);
        done_tx.send(()).unwrap();
        t.join().unwrap();
    }

    fn rules() -> Rules {
        Rules {
            roots: vec!["/ws".into()],
            excluded: vec!["/ws/.git".into()],
            allowed: vec![
                ("/run/user/1000/tmux-1000/default".into(), Some((1, 2))),
                ("/ws/pg.sock".into(), Some((1, 7))),
                ("/ws/later.sock".into(), None),
            ],
            network: false,
            proxy: None,
            started: (1000, 500),
            mounts: Default::default(),
            guard: false,
            denied: Default::default(),
            listened: Default::default(),
            temp_roots: Vec::new(),
            own_tmp: None,
        }
    }

    #[test]
    fn only_a_socket_born_after_the_start_is_the_commands_own() {
        let r = rules();
        assert!(r.born_during_the_run(Some((1000, 500))));
        assert!(r.born_during_the_run(Some((1001, 0))));
        assert!(
            !r.born_during_the_run(Some((1000, 499))),
            "born before the start"
        );
        assert!(!r.born_during_the_run(None), "no birth time: denied");
    }

    #[test]
    fn decisions_by_real_location() {
        let r = rules();
        let id = (1, 99);
        assert_eq!(
            r.decide(Path::new("/ws/sock"), id),
            Decision::InWritableRoot
        );
        assert_eq!(
            r.decide(Path::new("/ws/.git/fsmonitor"), id),
            Decision::Denied
        );
        assert_eq!(r.decide(Path::new("/wsx/sock"), id), Decision::Denied);
        assert_eq!(
            r.decide(Path::new("/run/user/1000/tmux-1000/default"), id),
            Decision::Allowed,
            "outside the roots the command cannot replace it"
        );
        assert_eq!(
            r.decide(Path::new("/run/user/1000/bus"), id),
            Decision::Denied
        );
        // a named socket inside a root: only the one that was there, or one born later
        assert_eq!(
            r.decide(Path::new("/ws/pg.sock"), (1, 7)),
            Decision::Allowed
        );
        assert_eq!(r.decide(Path::new("/ws/pg.sock"), id), Decision::Denied);
        assert_eq!(
            r.decide(Path::new("/ws/later.sock"), id),
            Decision::AllowedIfNew
        );
    }

    #[test]
    fn only_a_socket_the_command_listened_on_is_its_own() {
        let r = rules();
        assert!(!r.listened_on((1, 99)));
        let clone = r.clone(); // what another supervisor thread holds
        let file = || std::fs::File::open("/").unwrap();
        clone.record_listen((1, 99), file());
        assert!(r.listened_on((1, 99)) && !r.listened_on((1, 98)));
        // bounded: the oldest is forgotten first
        for i in 0..MAX_LISTENED as u64 {
            r.record_listen((2, i), file());
        }
        assert!(!r.listened_on((1, 99)) && r.listened_on((2, 0)));
    }
}
