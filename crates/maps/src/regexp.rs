//! `regexp:` tables (regexp_table(5)) with POSIX extended regular
//! expressions from the C library, as Postfix uses them: leftmost-longest
//! matching and the C library's syntax, which the `regex` crate does not
//! offer. Flags: `i` toggles case-insensitive matching (on by default), `x`
//! toggles extended syntax (on by default), `m` toggles multi-line mode.

use std::ffi::CString;
use std::mem::MaybeUninit;

use crate::DictError;
use crate::pattern::{CompileError, Matcher, Pattern, PatternDict};

/// A compiled POSIX regular expression.
pub struct PosixRegex {
    /// Boxed so the compiled state never moves after `regcomp` filled it.
    re: Box<libc::regex_t>,
    groups: usize,
}

// SAFETY: a compiled regex_t is only read after regcomp: regexec takes it
// by const pointer and glibc documents regexec as MT-Safe (it takes an
// internal lock around the shared DFA state). regfree runs only in Drop,
// which has exclusive access.
unsafe impl Send for PosixRegex {}
// SAFETY: see Send above; &PosixRegex only permits regexec.
unsafe impl Sync for PosixRegex {}

/// glibc's `regex_t` with its public `re_nsub` field (regex.h), which the
/// libc crate keeps private. The layout is glibc's stable ABI; the size
/// check below ties it to the libc crate's definition.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[repr(C)]
struct GlibcRegex {
    buffer: *mut libc::c_void,
    allocated: libc::size_t,
    used: libc::size_t,
    syntax: libc::c_ulong,
    fastmap: *mut libc::c_char,
    translate: *mut libc::c_char,
    re_nsub: libc::size_t,
    bitfield: u8,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
const _: () = assert!(std::mem::size_of::<GlibcRegex>() == std::mem::size_of::<libc::regex_t>());

impl std::fmt::Debug for PosixRegex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PosixRegex")
            .field("groups", &self.groups)
            .finish()
    }
}

impl PosixRegex {
    pub fn new(pattern: &str, cflags: libc::c_int) -> Result<PosixRegex, String> {
        let c = CString::new(pattern).map_err(|_| "NUL byte in pattern".to_string())?;
        let mut re: Box<MaybeUninit<libc::regex_t>> = Box::new(MaybeUninit::uninit());
        // SAFETY: `re` points to writable storage for a regex_t and `c` is a
        // NUL-terminated string that outlives the call.
        let rc = unsafe { libc::regcomp(re.as_mut_ptr(), c.as_ptr(), cflags) };
        if rc != 0 {
            let mut buf = [0u8; 256];
            // SAFETY: regerror writes at most buf.len() bytes, NUL included;
            // after a failed regcomp, glibc's regerror does not read `re`.
            unsafe { libc::regerror(rc, re.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return Err(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
        // SAFETY: regcomp returned 0, so it initialised the regex_t.
        let re: Box<libc::regex_t> = unsafe { Box::from_raw(Box::into_raw(re).cast()) };
        let groups = nsub(&re);
        Ok(PosixRegex { re, groups })
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn nsub(re: &libc::regex_t) -> usize {
    let p: *const libc::regex_t = re;
    // SAFETY: GlibcRegex has the layout of glibc's regex_t (asserted size,
    // field order from regex.h), and `re` is initialised.
    unsafe { (*p.cast::<GlibcRegex>()).re_nsub }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn nsub(_re: &libc::regex_t) -> usize {
    // Without glibc's layout we cannot read re_nsub; allow every $n.
    9
}

impl Drop for PosixRegex {
    fn drop(&mut self) {
        // SAFETY: `re` was initialised by a successful regcomp and is freed
        // exactly once, here.
        unsafe { libc::regfree(&mut *self.re) };
    }
}

const MAX_GROUPS: usize = 10;

impl Matcher for PosixRegex {
    fn captures(&self, subject: &str) -> Option<Vec<Option<(usize, usize)>>> {
        let c = CString::new(subject).ok()?;
        let mut m = [libc::regmatch_t {
            rm_so: -1,
            rm_eo: -1,
        }; MAX_GROUPS];
        // SAFETY: `re` is a compiled regex, `c` is NUL-terminated, and `m`
        // has room for MAX_GROUPS matches as the call says.
        let rc = unsafe { libc::regexec(&*self.re, c.as_ptr(), MAX_GROUPS, m.as_mut_ptr(), 0) };
        if rc != 0 {
            return None;
        }
        Some(
            m.iter()
                .map(|r| (r.rm_so >= 0).then_some((r.rm_so as usize, r.rm_eo as usize)))
                .collect(),
        )
    }

    fn groups(&self) -> usize {
        self.groups
    }
}

/// Compiles a regexp_table(5) pattern with its flags.
pub fn compile(p: &Pattern, _note: &mut dyn FnMut(&str)) -> Result<PosixRegex, CompileError> {
    let (mut icase, mut extended, mut newline) = (true, true, false);
    for f in p.flags.chars() {
        match f {
            'i' => icase = !icase,
            'x' => extended = !extended,
            'm' => newline = !newline,
            other => {
                return Err(CompileError::Flag(format!(
                    "unknown regexp option \"{other}\""
                )));
            }
        }
    }
    let mut cflags = 0;
    if icase {
        cflags |= libc::REG_ICASE;
    }
    if extended {
        cflags |= libc::REG_EXTENDED;
    }
    if newline {
        cflags |= libc::REG_NEWLINE;
    }
    PosixRegex::new(&p.text, cflags).map_err(CompileError::Pattern)
}

/// A `regexp:/path` table.
pub type RegexpDict = PatternDict<PosixRegex>;

/// Opens a `regexp:/path` table.
pub fn open(path: &str) -> Result<RegexpDict, DictError> {
    PatternDict::open("regexp", path, compile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dict;

    fn pat(text: &str, flags: &str) -> PosixRegex {
        compile(
            &Pattern {
                text: text.into(),
                flags: flags.into(),
                negate: false,
            },
            &mut |_| {},
        )
        .unwrap()
    }

    #[test]
    fn posix_semantics() {
        let re = pat("^(.*)@(example)\\.com$", "");
        assert_eq!(re.groups(), 2);
        let caps = re.captures("Joe@EXAMPLE.com").unwrap();
        assert_eq!(caps[1], Some((0, 3)));
        assert!(
            pat("^abc$", "i").captures("ABC").is_none(),
            "i toggles case folding off"
        );
        // POSIX is leftmost-longest: the alternation takes the longer branch.
        let caps = pat("(a|ab)(c|bcd)", "").captures("abcd").unwrap();
        assert_eq!(caps[0], Some((0, 4)));
    }

    #[test]
    fn table_with_if_endif_and_negation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.re");
        std::fs::write(
            &path,
            "if /@example\\.com$/\n/^postmaster@/ pm\n/^(.+)\\+(.+)@/ $1 and $2\nendif\n!/@/ local\n/./ other\n",
        )
        .unwrap();
        let d = open(path.to_str().unwrap()).unwrap();
        assert_eq!(
            d.lookup("postmaster@example.com").unwrap().as_deref(),
            Some("pm")
        );
        assert_eq!(
            d.lookup("a+b@example.com").unwrap().as_deref(),
            Some("a and b")
        );
        assert_eq!(
            d.lookup("postmaster@other.org").unwrap().as_deref(),
            Some("other")
        );
        assert_eq!(d.lookup("root").unwrap().as_deref(), Some("local"));
    }
}
