//! `SecretBuf` as the kernel sees it: /proc/self/smaps flags of its mapping and its neighbours,
//! with an ordinary heap allocation as the control.
#![cfg(target_os = "linux")]

mod common;

use common::attacker_json;
use secure_main::{LockPolicy, LockStatus, SecretBuf};

struct Vma {
    start: usize,
    end: usize,
    perms: String,
    flags: Vec<String>,
}

fn vmas() -> Vec<Vma> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let mut out: Vec<Vma> = Vec::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                let perms = line.split_whitespace().nth(1).expect("perms").to_owned();
                out.push(Vma {
                    start,
                    end,
                    perms,
                    flags: Vec::new(),
                });
                continue;
            }
        }
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            out.last_mut().expect("VmFlags after a header").flags =
                flags.split_whitespace().map(str::to_owned).collect();
        }
    }
    assert!(!out.is_empty(), "no mappings parsed from /proc/self/smaps");
    out
}

fn vma_at(vmas: &[Vma], addr: usize) -> &Vma {
    let found = vmas.iter().find(|v| v.start <= addr && addr < v.end);
    assert!(found.is_some(), "no mapping contains {addr:#x}");
    found.expect("checked above")
}

#[test]
fn secret_pages_are_locked_not_dumped_wiped_on_fork_and_fenced_by_guard_pages() {
    // Both backings: memfd_secret where the kernel offers it (this suite's machines do: a kernel
    // without it fails here loudly), and the mlock'ed fallback.
    for secret in [true, false] {
        let mut b = if secret {
            SecretBuf::with_capacity(5000, LockPolicy::Required)
        } else {
            SecretBuf::with_capacity_mlocked(5000, LockPolicy::Required)
        }
        .expect("SecretBuf");
        b.extend_from_slice(b"sk-secret").expect("extend");
        assert_eq!(
            b.in_secret_memory(),
            secret,
            "memfd_secret availability (kernel >= 5.14, enabled) is what this test expects"
        );
        assert_eq!(
            b.lock_status(),
            LockStatus::Locked,
            "tests run as root: mlock must succeed"
        );
        let addr = b.data_addr_for_tests();
        let all = vmas();
        let data = vma_at(&all, addr);
        assert_eq!(data.start, addr, "the data pages are their own mapping");
        // memfd_secret: a shared mapping, locked by the kernel, not dumped, not copied into a
        // forked child ("dc", MADV_DONTFORK); fallback: private, mlock'ed, wiped on fork ("wf").
        let (perms, flags) = if secret {
            ("rw-s", ["lo", "dd", "dc"])
        } else {
            ("rw-p", ["lo", "dd", "wf"])
        };
        assert_eq!(data.perms, perms);
        for flag in flags {
            assert!(
                data.flags.iter().any(|f| f == flag),
                "VmFlags lacks {flag}: {:?}",
                data.flags
            );
        }
        let page = (data.end - data.start) / 2; // 5000 bytes -> 2 pages of 4 KiB (or 1 of 64 KiB)
        assert!(data.end - data.start >= 5000 && page > 0);
        let low = vma_at(&all, addr - 1);
        let high = vma_at(&all, data.end);
        assert_eq!(low.perms, "---p", "guard page below the secret");
        assert_eq!(high.perms, "---p", "guard page above the secret");
        assert!(!low.flags.iter().any(|f| f == "rd"));
        assert!(!high.flags.iter().any(|f| f == "rd"));
    }
}

#[test]
fn control_ordinary_heap_memory_is_neither_locked_nor_excluded_from_dumps() {
    let v = vec![7u8; 1 << 20];
    let all = vmas();
    let heap = vma_at(&all, v.as_ptr() as usize);
    assert!(heap.perms.starts_with("rw"));
    for flag in ["lo", "dd", "wf"] {
        assert!(
            !heap.flags.iter().any(|f| f == flag),
            "heap VmFlags has {flag}: {:?}",
            heap.flags
        );
    }
    std::hint::black_box(&v);
}

#[test]
fn report_counts_locked_secret_memory() {
    let b = SecretBuf::with_capacity(100, LockPolicy::Required).expect("SecretBuf");
    let during = secure_main::hardening_report();
    // Other tests in this binary create buffers concurrently (exact counts are checked in a
    // process of their own by the attacker's mlock tests); this buffer alone adds a page.
    assert!(during.locked_secret_buffers >= 1);
    assert!(during.locked_secret_pages >= 1);
    assert!(during.locked_secret_bytes >= during.locked_secret_pages);
    let json = serde_json::to_value(&during).expect("serialize");
    for key in [
        "dumpable",
        "core_limit",
        "locked_secret_pages",
        "no_new_privs",
        "seccomp",
        "landlock",
        "uid",
        "groups",
    ] {
        assert!(json.get(key).is_some(), "report JSON lacks {key}: {json}");
    }
    drop(b);
    let text = secure_main::hardening_report().to_string();
    assert!(text.contains("locked secret memory: "), "{text}");
    assert!(text.contains("pre-main hardening: did not run"), "{text}");
}

#[test]
fn guard_pages_are_unreadable_and_the_data_pages_readable() {
    let v = attacker_json(&["guards"]);
    // Control: the kernel copies from the data pages.
    assert_eq!(v["first_data_byte"]["result"], "ok", "{v}");
    assert_eq!(v["last_data_byte"]["result"], "ok", "{v}");
    // One byte past either end: EFAULT, the guard page is PROT_NONE.
    assert_eq!(v["byte_below"]["result"], "EFAULT", "{v}");
    assert_eq!(v["byte_above"]["result"], "EFAULT", "{v}");
}

#[test]
fn a_forked_child_sees_zeros_instead_of_the_secret() {
    let v = attacker_json(&["wipe-on-fork"]);
    assert_eq!(v["child_sees_zeros"], true, "{v}");
    assert_eq!(v["child_sees_secret"], false, "{v}");
    // Control: ordinary heap memory is copied into the child as usual.
    assert_eq!(v["child_heap_intact"], true, "{v}");
    assert_eq!(v["parent_still_has_secret"], true, "{v}");
}

#[test]
fn reading_a_key_through_fd_reader_survives_interrupting_signals() {
    let v = attacker_json(&["eintr"]);
    // Control: the same signals make a plain read(2) fail with EINTR.
    assert_eq!(v["control"], "EINTR", "{v}");
    assert_eq!(v["read_ok"], true, "{v}");
    assert!(
        v["signals_during_read"].as_u64().expect("count") >= 1,
        "{v}"
    );
}
