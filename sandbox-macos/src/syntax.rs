//! A small checker for the SBPL this crate generates, so a typo cannot ship even though the
//! policy is only ever compiled by the kernel on macOS.
//!
//! It parses s-expressions (lists, atoms, `"..."` strings with `\` escapes, `#"..."` regex
//! literals, `;` comments) and accepts only the shapes this crate emits: `(version 1)` first, then
//! `(allow|deny OPERATION... FILTER...)` forms whose operations and filters come from
//! [`OPERATIONS`] and [`FILTERS`], with filters only on operations of their class. A string path
//! must be one of [`crate::rules::CONSTANT_PATHS`]: every other path has to be a `(param "KEY")`.
//! It is stricter than Seatbelt, never looser: anything it accepts is built from forms that
//! codex's production policy already uses, plus the operations in the table below.

use std::collections::BTreeSet;
use std::fmt;

use crate::rules::CONSTANT_PATHS;

/// What an operation is about; filters are valid only for some classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// `default`: no filters.
    Default,
    File,
    Process,
    Signal,
    Sysctl,
    Mach,
    Iokit,
    Ipc,
    Network,
    /// Operations that take no filters here.
    Bare,
}

/// The operations the checker accepts.
pub const OPERATIONS: &[(&str, OpClass)] = &[
    ("default", OpClass::Default),
    ("file-read*", OpClass::File),
    ("file-write*", OpClass::File),
    ("file-write-data", OpClass::File),
    ("file-write-unlink", OpClass::File),
    ("file-ioctl", OpClass::File),
    ("process-exec", OpClass::Process),
    ("process-fork", OpClass::Bare),
    ("process-info*", OpClass::Process),
    ("process-info-listpids", OpClass::Process),
    ("process-info-pidinfo", OpClass::Process),
    ("signal", OpClass::Signal),
    ("user-preference-read", OpClass::Bare),
    ("mach-host*", OpClass::Bare),
    ("mach-lookup", OpClass::Mach),
    ("sysctl-read", OpClass::Sysctl),
    ("sysctl-write", OpClass::Sysctl),
    ("iokit-open", OpClass::Iokit),
    ("ipc-posix-sem", OpClass::Ipc),
    ("pseudo-tty", OpClass::Bare),
    ("network-outbound", OpClass::Network),
    ("network-inbound", OpClass::Network),
    ("system-socket", OpClass::Network),
];

/// The argument a filter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// One or more filters (`require-all`, `require-any`).
    Filters,
    /// Exactly one filter (`require-not`).
    OneFilter,
    /// A constant path string from `CONSTANT_PATHS` or `(param "KEY")`.
    Path,
    /// A `#"..."` regex literal.
    Regex,
    /// A plain string.
    Str,
    /// One symbol from the list.
    Symbol(&'static [&'static str]),
}

/// The filters the checker accepts: name, argument, operation classes it applies to (`None`: any
/// class that takes filters, for the combinators).
const FILTERS: &[(&str, Arg, Option<&[OpClass]>)] = &[
    ("require-all", Arg::Filters, None),
    ("require-any", Arg::Filters, None),
    ("require-not", Arg::OneFilter, None),
    (
        "literal",
        Arg::Path,
        Some(&[OpClass::File, OpClass::Process]),
    ),
    (
        "subpath",
        Arg::Path,
        Some(&[OpClass::File, OpClass::Process]),
    ),
    ("regex", Arg::Regex, Some(&[OpClass::File])),
    ("extension", Arg::Str, Some(&[OpClass::File])),
    (
        "vnode-type",
        Arg::Symbol(&["CHARACTER-DEVICE", "REGULAR-FILE", "DIRECTORY", "SYMLINK"]),
        Some(&[OpClass::File]),
    ),
    (
        "target",
        Arg::Symbol(&["self", "same-sandbox"]),
        Some(&[OpClass::Process, OpClass::Signal]),
    ),
    ("sysctl-name", Arg::Str, Some(&[OpClass::Sysctl])),
    ("sysctl-name-prefix", Arg::Str, Some(&[OpClass::Sysctl])),
    ("sysctl-name-regex", Arg::Regex, Some(&[OpClass::Sysctl])),
    ("global-name", Arg::Str, Some(&[OpClass::Mach])),
    (
        "iokit-registry-entry-class",
        Arg::Str,
        Some(&[OpClass::Iokit]),
    ),
];

/// A syntax or vocabulary error, with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SyntaxError {}

/// What a successful check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Every `(param "KEY")` the policy uses.
    pub params: BTreeSet<String>,
    /// Number of top-level rules (not counting `(version 1)`).
    pub rules: usize,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sexp {
    List(Vec<Sexp>, Pos),
    Atom(String, Pos),
    Str(String, Pos),
    Regex(String, Pos),
}

/// A position in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Sexp {
    pub fn pos(&self) -> Pos {
        match self {
            Sexp::List(_, p) | Sexp::Atom(_, p) | Sexp::Str(_, p) | Sexp::Regex(_, p) => *p,
        }
    }

    /// The head atom of a list, if any.
    pub fn head(&self) -> Option<&str> {
        match self {
            Sexp::List(items, _) => match items.first() {
                Some(Sexp::Atom(a, _)) => Some(a),
                _ => None,
            },
            _ => None,
        }
    }
}

fn err(pos: Pos, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        line: pos.line,
        column: pos.column,
        message: message.into(),
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    pos: Pos,
}

impl Lexer<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn skip_space_and_comments(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == ';' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    /// A string body after the opening quote. `escapes`: `\` escapes the next character
    /// (ordinary strings); regex literals take backslashes literally.
    fn string_body(&mut self, start: Pos, escapes: bool) -> Result<String, SyntaxError> {
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(err(start, "unterminated string")),
                Some('\n') => return Err(err(start, "newline inside a string")),
                Some('"') => return Ok(s),
                Some('\\') if escapes => match self.bump() {
                    Some(c @ ('"' | '\\')) => s.push(c),
                    Some(c) => return Err(err(start, format!("unknown escape \\{c} in string"))),
                    None => return Err(err(start, "unterminated string")),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn expr(&mut self) -> Result<Option<Sexp>, SyntaxError> {
        self.skip_space_and_comments();
        let start = self.pos;
        let Some(&c) = self.chars.peek() else {
            return Ok(None);
        };
        match c {
            '(' => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip_space_and_comments();
                    match self.chars.peek() {
                        None => return Err(err(start, "unbalanced `(`: list is never closed")),
                        Some(')') => {
                            self.bump();
                            return Ok(Some(Sexp::List(items, start)));
                        }
                        Some(_) => match self.expr()? {
                            Some(e) => items.push(e),
                            None => return Err(err(start, "unbalanced `(`: list is never closed")),
                        },
                    }
                }
            }
            ')' => Err(err(start, "unbalanced `)`")),
            '"' => {
                self.bump();
                Ok(Some(Sexp::Str(self.string_body(start, true)?, start)))
            }
            '#' => {
                self.bump();
                if self.chars.peek() == Some(&'"') {
                    self.bump();
                    Ok(Some(Sexp::Regex(self.string_body(start, false)?, start)))
                } else {
                    Err(err(start, "`#` must start a regex literal `#\"...\"`"))
                }
            }
            _ => {
                let mut a = String::new();
                while let Some(&c) = self.chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"' | ';' | '#') {
                        break;
                    }
                    a.push(c);
                    self.bump();
                }
                Ok(Some(Sexp::Atom(a, start)))
            }
        }
    }
}

/// Parse `text` into top-level expressions (syntax only).
pub fn parse(text: &str) -> Result<Vec<Sexp>, SyntaxError> {
    let mut lx = Lexer {
        chars: text.chars().peekable(),
        pos: Pos { line: 1, column: 1 },
    };
    let mut out = Vec::new();
    while let Some(e) = lx.expr()? {
        out.push(e);
    }
    Ok(out)
}

/// Parse and check `text`: syntax, vocabulary, and that paths are constants or parameters.
pub fn check(text: &str) -> Result<Checked, SyntaxError> {
    let forms = parse(text)?;
    let mut it = forms.iter();
    match it.next() {
        Some(Sexp::List(items, _))
            if items.len() == 2
                && matches!(&items[0], Sexp::Atom(a, _) if a == "version")
                && matches!(&items[1], Sexp::Atom(a, _) if a == "1") => {}
        Some(other) => return Err(err(other.pos(), "the policy must start with (version 1)")),
        None => return Err(err(Pos { line: 1, column: 1 }, "empty policy")),
    }
    let mut checked = Checked::default();
    for form in it {
        check_rule(form, &mut checked.params)?;
        checked.rules += 1;
    }
    Ok(checked)
}

fn check_rule(form: &Sexp, params: &mut BTreeSet<String>) -> Result<(), SyntaxError> {
    let Sexp::List(items, pos) = form else {
        return Err(err(
            form.pos(),
            "expected a rule `(allow ...)` or `(deny ...)`",
        ));
    };
    match form.head() {
        Some("allow" | "deny") => {}
        Some(other) => {
            return Err(err(
                *pos,
                format!("unknown rule `{other}`: expected allow or deny"),
            ));
        }
        None => return Err(err(*pos, "expected a rule `(allow ...)` or `(deny ...)`")),
    }
    let mut classes: Vec<OpClass> = Vec::new();
    let mut rest = items[1..].iter().peekable();
    while let Some(Sexp::Atom(op, p)) = rest.peek() {
        let Some((_, class)) = OPERATIONS.iter().find(|(name, _)| name == op) else {
            return Err(err(*p, format!("unknown operation `{op}`")));
        };
        classes.push(*class);
        rest.next();
    }
    if classes.is_empty() {
        return Err(err(*pos, "a rule needs at least one operation"));
    }
    let filters: Vec<&Sexp> = rest.collect();
    if !filters.is_empty() {
        if let Some(c) = classes
            .iter()
            .find(|c| matches!(c, OpClass::Default | OpClass::Bare))
        {
            return Err(err(
                filters[0].pos(),
                format!("operation class {c:?} takes no filters"),
            ));
        }
        if classes.len() > 1 && classes.iter().any(|c| *c != classes[0]) {
            return Err(err(
                *pos,
                "operations of different classes cannot share filters",
            ));
        }
    }
    for f in filters {
        check_filter(f, classes[0], params)?;
    }
    Ok(())
}

fn check_filter(
    f: &Sexp,
    class: OpClass,
    params: &mut BTreeSet<String>,
) -> Result<(), SyntaxError> {
    let Sexp::List(items, pos) = f else {
        return Err(err(f.pos(), "expected a filter `(name ...)`"));
    };
    let Some(name) = f.head() else {
        return Err(err(*pos, "a filter must start with its name"));
    };
    let Some((_, arg, classes)) = FILTERS.iter().find(|(n, _, _)| *n == name) else {
        return Err(err(*pos, format!("unknown filter `{name}`")));
    };
    if let Some(classes) = classes {
        if !classes.contains(&class) {
            return Err(err(
                *pos,
                format!("filter `{name}` does not apply to {class:?} operations"),
            ));
        }
    }
    let args = &items[1..];
    match arg {
        Arg::Filters => {
            if args.is_empty() {
                return Err(err(*pos, format!("`{name}` needs at least one filter")));
            }
            for a in args {
                check_filter(a, class, params)?;
            }
        }
        Arg::OneFilter => {
            if args.len() != 1 {
                return Err(err(*pos, format!("`{name}` takes exactly one filter")));
            }
            check_filter(&args[0], class, params)?;
        }
        Arg::Path => {
            let [a] = args else {
                return Err(err(*pos, format!("`{name}` takes exactly one path")));
            };
            check_path_arg(a, params)?;
        }
        Arg::Regex => match args {
            [Sexp::Regex(r, p)] if r.is_empty() => return Err(err(*p, "empty regex")),
            [Sexp::Regex(..)] => {}
            _ => return Err(err(*pos, format!("`{name}` takes exactly one #\"regex\""))),
        },
        Arg::Str => match args {
            [Sexp::Str(s, p)] if s.is_empty() => return Err(err(*p, "empty string")),
            [Sexp::Str(..)] => {}
            _ => return Err(err(*pos, format!("`{name}` takes exactly one string"))),
        },
        Arg::Symbol(allowed) => match args {
            [Sexp::Atom(a, p)] if !allowed.contains(&a.as_str()) => {
                return Err(err(*p, format!("`{name}` does not accept `{a}`")));
            }
            [Sexp::Atom(..)] => {}
            _ => return Err(err(*pos, format!("`{name}` takes exactly one symbol"))),
        },
    }
    Ok(())
}

fn check_path_arg(a: &Sexp, params: &mut BTreeSet<String>) -> Result<(), SyntaxError> {
    match a {
        Sexp::Str(s, p) => {
            if CONSTANT_PATHS.contains(&s.as_str()) {
                Ok(())
            } else {
                Err(err(
                    *p,
                    format!("path {s:?} spliced into the policy: paths must be (param \"KEY\")"),
                ))
            }
        }
        Sexp::List(items, p) if a.head() == Some("param") => match &items[1..] {
            [Sexp::Str(key, kp)] => {
                if key.is_empty()
                    || !key
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                {
                    return Err(err(
                        *kp,
                        format!("parameter name {key:?} must be [A-Z0-9_]+"),
                    ));
                }
                params.insert(key.clone());
                Ok(())
            }
            _ => Err(err(*p, "`param` takes exactly one string")),
        },
        other => Err(err(
            other.pos(),
            "a path must be a constant string or (param \"KEY\")",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "(version 1)\n(deny default)\n; comment with ( and \"\n(allow file-read*)\n\
        (allow file-write* (require-all (subpath (param \"WRITABLE_ROOT_0\")) \
        (require-not (subpath (param \"WRITABLE_ROOT_0_RO_0\")))))\n\
        (allow file-ioctl (regex #\"^/dev/ttys[0-9]+\"))\n(allow sysctl-read (sysctl-name \"hw.ncpu\"))\n";

    #[test]
    fn accepts_a_good_policy_and_collects_params() {
        let c = check(GOOD).unwrap();
        assert_eq!(c.rules, 5);
        let want: BTreeSet<String> = ["WRITABLE_ROOT_0", "WRITABLE_ROOT_0_RO_0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(c.params, want);
    }

    fn rejects(text: &str, needle: &str) {
        let e = check(text).expect_err(text).to_string();
        assert!(
            e.contains(needle),
            "error {e:?} should contain {needle:?} for {text:?}"
        );
    }

    #[test]
    fn rejects_broken_policies() {
        rejects("(version 1)\n(allow file-read*", "unbalanced `(`");
        rejects("(version 1)\n(allow file-read*))", "unbalanced `)`");
        rejects(
            "(version 1)\n(allow sysctl-read (sysctl-name \"hw.ncpu))",
            "unterminated string",
        );
        rejects(
            "(version 1)\n(allow file-ioctl (regex #\"^/dev/ttys))",
            "unterminated string",
        );
        rejects(
            "(version 1)\n(allow file-raed*)",
            "unknown operation `file-raed*`",
        );
        rejects(
            "(version 1)\n(allow file-read* (subpth (param \"A\")))",
            "unknown filter `subpth`",
        );
        rejects("(allow file-read*)", "must start with (version 1)");
        rejects("", "empty policy");
        rejects("(version 2)\n(deny default)", "must start with (version 1)");
        rejects("(version 1)\n(alow file-read*)", "unknown rule `alow`");
        rejects("(version 1)\n(allow)", "at least one operation");
        rejects(
            "(version 1)\n(allow process-fork (subpath (param \"A\")))",
            "takes no filters",
        );
        rejects(
            "(version 1)\n(allow sysctl-read (subpath (param \"A\")))",
            "does not apply to Sysctl",
        );
        rejects(
            "(version 1)\n(allow file-write* (subpath \"/Users/me\"))",
            "spliced into the policy",
        );
        rejects(
            "(version 1)\n(allow file-write* (subpath (param \"lower\")))",
            "must be [A-Z0-9_]+",
        );
        rejects(
            "(version 1)\n(allow file-write* (require-not (subpath (param \"A\")) (subpath (param \"B\"))))",
            "exactly one filter",
        );
        rejects(
            "(version 1)\n(allow file-write* (require-all))",
            "at least one filter",
        );
        rejects(
            "(version 1)\n(allow file-ioctl (regex \"^/dev\"))",
            "#\"regex\"",
        );
        rejects(
            "(version 1)\n(allow signal (target everyone))",
            "does not accept `everyone`",
        );
        rejects("(version 1)\nfile-read*", "expected a rule");
        rejects(
            "(version 1)\n(allow sysctl-read (sysctl-name \"a\nb\"))",
            "newline inside a string",
        );
        rejects(
            "(version 1)\n(allow sysctl-read (sysctl-name \"a\\qb\"))",
            "unknown escape",
        );
    }

    #[test]
    fn mixed_classes_with_filters_are_rejected_but_allowed_bare() {
        assert!(check("(version 1)\n(allow file-read* sysctl-read)\n").is_ok());
        rejects(
            "(version 1)\n(allow file-read* sysctl-read (sysctl-name \"x\"))",
            "different classes",
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = check("(version 1)\n(deny default)\n  (allow bogus-op)").unwrap_err();
        assert_eq!((e.line, e.column), (3, 10));
        assert_eq!(
            e.to_string(),
            "line 3, column 10: unknown operation `bogus-op`"
        );
    }
}
