//! Every constant allow rule of the generated policy, in one place, each with its reason and the
//! tool that needed it.
//!
//! These rules hold no path from the policy: paths enter only as `(param "...")` (see
//! `generate.rs`). The few constant paths here (`/dev/null`, `/dev/ptmx`, the `/dev/ttys*` regex)
//! are listed in [`CONSTANT_PATHS`], which the syntax check uses to reject any other string path.
//!
//! Started from codex's `seatbelt_base_policy.sbpl` (itself derived from Chrome's), then widened
//! where codex broke common tools (`ps`, x86 feature sysctls, `os.uptime()`, Rosetta detection)
//! and kept narrow where widening would leak (no `kern.procargs2`: other processes' argv and
//! environment).

/// One constant rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The SBPL form. Constant text; never contains a path from the policy.
    pub sbpl: &'static str,
    /// Why the rule exists.
    pub why: &'static str,
    /// Which tools needed it.
    pub needed_by: &'static str,
}

/// The rules every confined policy (`read-only`, `workspace-write`) starts with, after
/// `(deny default)`.
pub const BASE_RULES: &[Rule] = &[
    Rule {
        sbpl: "(allow process-exec)",
        why: "run the command and its children; children inherit this same policy",
        needed_by: "every command (sandbox-exec execs it), shells, make",
    },
    Rule {
        sbpl: "(allow process-fork)",
        why: "create child processes; they stay in this sandbox",
        needed_by: "sh, make, cargo, compilers",
    },
    Rule {
        sbpl: "(allow signal (target same-sandbox))",
        why: "signal processes of this sandbox only, never the user's other processes",
        needed_by: "shell job control, kill, test runners stopping their workers",
    },
    Rule {
        sbpl: "(allow process-info* (target same-sandbox))",
        why: "full process information about processes of this sandbox",
        needed_by: "libproc users, waitpid helpers, ps on the sandbox's own tree",
    },
    Rule {
        sbpl: "(allow process-info-listpids)",
        why: "list process ids (the ids only)",
        needed_by: "ps, pgrep, python psutil",
    },
    Rule {
        sbpl: "(allow process-info-pidinfo)",
        why: "name, parent, owner, times and working directory of any process; their argv and \
              environment stay hidden (kern.procargs2 is not allowed)",
        needed_by: "ps, top, pgrep",
    },
    Rule {
        sbpl: "(allow user-preference-read)",
        why: "read CFPreferences (user defaults); writes stay denied",
        needed_by: "Foundation-based tools: swift, xcrun, plutil, defaults read",
    },
    Rule {
        sbpl: "(allow mach-host*)",
        why: "host_processor_info and host_statistics: CPU list and load",
        needed_by: "node os.cpus() (libuv), vm_stat, top",
    },
    Rule {
        sbpl: "(allow file-write-data (require-all (literal \"/dev/null\") (vnode-type CHARACTER-DEVICE)))",
        why: "discard output; the only write the read-only policy has",
        needed_by: "every shell redirect to /dev/null",
    },
    Rule {
        sbpl: "(allow sysctl-write (sysctl-name \"kern.grade_cputype\"))",
        why: "a read in disguise: the caller passes a buffer, so the kernel files it as a write",
        needed_by: "Java (HotSpot) CPU detection",
    },
    Rule {
        sbpl: "(allow iokit-open (iokit-registry-entry-class \"RootDomainUserClient\"))",
        why: "query power management (sleep assertions)",
        needed_by: "caffeinate, IOPMAssertion users such as xcodebuild",
    },
    Rule {
        sbpl: "(allow mach-lookup (global-name \"com.apple.PowerManagement.control\"))",
        why: "the power management service behind the IOKit rule above",
        needed_by: "caffeinate, xcodebuild",
    },
    Rule {
        sbpl: "(allow mach-lookup (global-name \"com.apple.system.opendirectoryd.libinfo\"))",
        why: "user and group lookups (getpwuid, getgrgid)",
        needed_by: "id, whoami, ls -l, git, ssh, python pwd",
    },
    Rule {
        sbpl: "(allow ipc-posix-sem)",
        why: "POSIX named semaphores",
        needed_by: "python multiprocessing (SemLock behind Lock, Queue, Pool)",
    },
    Rule {
        sbpl: "(allow pseudo-tty)",
        why: "allocate pseudo-terminals (openpty, posix_openpt)",
        needed_by: "script, expect, python pty, node-pty",
    },
    Rule {
        sbpl: "(allow file-read* file-write* file-ioctl (literal \"/dev/ptmx\"))",
        why: "the pseudo-terminal multiplexer behind openpty",
        needed_by: "script, expect, python pty, node-pty",
    },
    Rule {
        sbpl: "(allow file-read* file-write* (require-all (regex #\"^/dev/ttys[0-9]+\") (extension \"com.apple.sandbox.pty\")))",
        why: "the terminals allocated inside this sandbox (they carry the pty extension)",
        needed_by: "script, expect, python pty, node-pty",
    },
    Rule {
        sbpl: "(allow file-write-data (require-all (regex #\"^/dev/ttys[0-9]+\") (vnode-type CHARACTER-DEVICE)))",
        why: "write to the terminal the user started codex from (opened before the sandbox)",
        needed_by: "interactive shells, less, vim",
    },
    Rule {
        sbpl: "(allow file-ioctl (regex #\"^/dev/ttys[0-9]+\"))",
        why: "terminal modes and window size on that terminal (tcsetattr, TIOCGWINSZ, isatty)",
        needed_by: "stty, readline, less, vim, colour detection in every CLI",
    },
];

/// How a sysctl is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlMatch {
    /// `(sysctl-name "...")`
    Name,
    /// `(sysctl-name-prefix "...")`
    Prefix,
}

/// One readable sysctl.
#[derive(Debug, Clone, Copy)]
pub struct Sysctl {
    pub matching: SysctlMatch,
    pub name: &'static str,
    /// Which tools read it.
    pub needed_by: &'static str,
}

const fn name(name: &'static str, needed_by: &'static str) -> Sysctl {
    Sysctl {
        matching: SysctlMatch::Name,
        name,
        needed_by,
    }
}

const fn prefix(name: &'static str, needed_by: &'static str) -> Sysctl {
    Sysctl {
        matching: SysctlMatch::Prefix,
        name,
        needed_by,
    }
}

/// Why the sysctl rule exists (one `(allow sysctl-read ...)` form, one comment per name).
pub const SYSCTL_WHY: &str = "read hardware and OS facts compilers and runtimes size themselves by; \
     nothing here identifies the user or exposes other processes' argv or environment";

/// The readable sysctls. Unknown names are harmless for Seatbelt (they are strings), so the list
/// errs on the side of what real tools read.
pub const SYSCTL_READ: &[Sysctl] = &[
    name(
        "hw.activecpu",
        "node os.cpus(), go runtime, make -j$(sysctl -n hw.ncpu) scripts",
    ),
    name(
        "hw.ncpu",
        "python os.cpu_count(), rustc/cargo job count, make scripts",
    ),
    name("hw.logicalcpu", "cargo/rayon num_cpus, ninja"),
    name("hw.logicalcpu_max", "num_cpus, libuv"),
    name("hw.physicalcpu", "num_cpus (physical), psutil"),
    name("hw.physicalcpu_max", "num_cpus (physical), psutil"),
    name("hw.packages", "psutil, hwloc"),
    name(
        "hw.nperflevels",
        "go runtime and swift on Apple silicon (P/E cores)",
    ),
    prefix(
        "hw.perflevel",
        "go runtime, swift, llvm on Apple silicon (per-core-type counts)",
    ),
    name("hw.memsize", "node os.totalmem(), jvm heap sizing, psutil"),
    name("hw.memsize_usable", "jvm heap sizing on recent macOS"),
    name("hw.pagesize", "allocators (jemalloc, mimalloc), jvm"),
    name("hw.pagesize_compat", "allocators under Rosetta"),
    name("hw.cachelinesize_compat", "allocators, rayon-style padding"),
    name("hw.cacheconfig", "llvm host detection, openblas"),
    name("hw.l1dcachesize_compat", "openblas, numpy"),
    name("hw.l1icachesize_compat", "openblas, numpy"),
    name("hw.l2cachesize_compat", "openblas, numpy"),
    name("hw.l3cachesize_compat", "openblas, numpy"),
    name("hw.byteorder", "perl and python configure checks"),
    name("hw.cputype", "uname -m, clang/rustc host target detection"),
    name(
        "hw.cpufamily",
        "llvm host cpu detection (-march=native), openblas",
    ),
    name("hw.cpu64bit_capable", "arch, go runtime"),
    name("hw.machine", "uname -m, python platform.machine()"),
    name(
        "hw.model",
        "system_profiler-free model checks, node os.machine()",
    ),
    name("hw.vectorunit", "vector library dispatch"),
    name("hw.busfrequency_compat", "java (legacy cpu info)"),
    name("hw.cpufrequency", "node os.cpus() speed, psutil"),
    name(
        "hw.cpufrequency_compat",
        "node os.cpus() speed under Rosetta",
    ),
    name(
        "hw.tbfrequency_compat",
        "mach_absolute_time conversion in runtimes",
    ),
    prefix(
        "hw.optional.",
        "cpu feature detection: llvm, go, openssl, numpy (arm and x86 features)",
    ),
    prefix(
        "machdep.cpu.",
        "node os.cpus() model, x86 feature detection (leaf7_features), java",
    ),
    name(
        "kern.argmax",
        "xargs, find -exec, make (command line length)",
    ),
    name(
        "kern.boottime",
        "node os.uptime(), python psutil.boot_time(), uptime",
    ),
    name(
        "kern.hostname",
        "hostname, git (commit identity), python socket.gethostname()",
    ),
    name("kern.maxfiles", "jvm and node file descriptor limits"),
    name(
        "kern.maxfilesperproc",
        "jvm, node, cargo raising RLIMIT_NOFILE",
    ),
    name("kern.maxproc", "shells, psutil"),
    name("kern.ngroups", "getgroups users (id)"),
    name(
        "kern.osproductversion",
        "sw_vers, python platform.mac_ver(), xcrun",
    ),
    name("kern.osrelease", "uname -r, node os.release()"),
    name("kern.ostype", "uname -s"),
    name("kern.osvariant_status", "libsystem internal checks"),
    name("kern.osversion", "uname -v, sw_vers"),
    name("kern.secure_kernel", "libsystem internal checks"),
    name("kern.usrstack64", "jvm and go stack placement"),
    name("kern.version", "uname -v, node os.version()"),
    prefix(
        "kern.proc.",
        "ps, pgrep, psutil (kinfo_proc lists: pid, ppid, uid, name; not argv)",
    ),
    name(
        "security.mac.lockdown_mode_state",
        "Foundation and swift start-up",
    ),
    name("sysctl.proc_cputype", "clang and rustc host detection"),
    name("sysctl.proc_native", "Rosetta-aware tools (homebrew, node)"),
    name(
        "sysctl.proc_translated",
        "Rosetta detection: homebrew, go, node, python platform",
    ),
    name("vm.loadavg", "node os.loadavg(), uptime"),
    name("vm.swapusage", "top, psutil.swap_memory()"),
];

/// Rules added when the policy allows network access (after codex's
/// `seatbelt_network_policy.sbpl`, itself from Chrome's `network.sb`).
pub const NETWORK_RULES: &[Rule] = &[
    Rule {
        sbpl: "(allow network-outbound)",
        why: "connect out (the policy allows network)",
        needed_by: "curl, git fetch, package managers",
    },
    Rule {
        sbpl: "(allow network-inbound)",
        why: "accept connections (local dev servers)",
        needed_by: "test servers, npm run dev",
    },
    Rule {
        sbpl: "(allow system-socket)",
        why: "create sockets of every family",
        needed_by: "every network client",
    },
    Rule {
        sbpl: "(allow mach-lookup (global-name \"com.apple.bsd.dirhelper\") (global-name \"com.apple.system.opendirectoryd.membership\"))",
        why: "per-user temporary and cache directory lookup, group membership",
        needed_by: "Security.framework and Foundation networking",
    },
    Rule {
        sbpl: "(allow mach-lookup (global-name \"com.apple.SecurityServer\") (global-name \"com.apple.networkd\") (global-name \"com.apple.ocspd\") (global-name \"com.apple.trustd.agent\"))",
        why: "TLS certificate evaluation through the system trust store",
        needed_by: "curl (SecureTransport), swift, git (https), python with truststore",
    },
    Rule {
        sbpl: "(allow mach-lookup (global-name \"com.apple.SystemConfiguration.DNSConfiguration\") (global-name \"com.apple.SystemConfiguration.configd\"))",
        why: "DNS resolver and proxy configuration",
        needed_by: "getaddrinfo in every network client",
    },
    Rule {
        sbpl: "(allow sysctl-read (sysctl-name-regex #\"^net.routetable\"))",
        why: "routing table reads",
        needed_by: "getaddrinfo, node os.networkInterfaces()",
    },
];

/// The only string paths the policy text may contain (all in [`BASE_RULES`]).
pub const CONSTANT_PATHS: &[&str] = &["/dev/null", "/dev/ptmx"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_a_reason_and_a_tool() {
        for r in BASE_RULES.iter().chain(NETWORK_RULES) {
            assert!(r.sbpl.starts_with("(allow "), "{}", r.sbpl);
            assert!(
                !r.why.trim().is_empty() && !r.needed_by.trim().is_empty(),
                "{}",
                r.sbpl
            );
            assert!(
                !r.why.contains('?'),
                "no questions in policy comments: {}",
                r.why
            );
            assert!(!r.why.contains('\n') && !r.needed_by.contains('\n'));
        }
        for s in SYSCTL_READ {
            assert!(
                !s.name.is_empty() && !s.needed_by.trim().is_empty(),
                "{}",
                s.name
            );
            assert!(!s.name.contains('"') && !s.name.contains('\\'));
        }
    }

    #[test]
    fn process_arguments_of_other_processes_stay_hidden() {
        // kern.procargs2 returns another process's argv and environment (API keys live there).
        for s in SYSCTL_READ {
            assert!(!"kern.procargs2".starts_with(s.name) || s.matching == SysctlMatch::Name);
            assert_ne!(s.name, "kern.procargs2");
            assert_ne!(s.name, "kern.procargs");
        }
    }
}
