//! Defer logs: why a deferred message's recipients wait, for `postqueue
//! -p` and `-j` (Postfix's defer(8) logfiles). One file per message,
//! `$queue_directory/defer/ID`, one line per waiting recipient:
//! `address TAB reason`. qmgr replaces it after each attempt that leaves
//! recipients waiting (written beside and renamed, so a reader never
//! sees half of it) and removes it with the queue file. A first line
//! `#warned` says the sender was told of the delay (delay_warning_time),
//! once. It is advisory: losing it in a crash loses only the reasons
//! shown (and may repeat a delay notice).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const DEFER_DIR: &str = "defer";

fn path(queue_directory: &Path, id: &str) -> PathBuf {
    queue_directory.join(DEFER_DIR).join(id)
}

/// Replaces the defer log of `id` with these (address, reason) pairs,
/// keeping (or setting, with `warned`) the delay-notice mark.
pub fn write(
    queue_directory: &Path,
    id: &str,
    reasons: &[(String, String)],
    warned: bool,
) -> io::Result<()> {
    let final_path = path(queue_directory, id);
    let tmp = queue_directory.join(DEFER_DIR).join(format!(".{id}.tmp"));
    let mut text = String::new();
    if warned || self::warned(queue_directory, id) {
        text.push_str(WARNED);
        text.push('\n');
    }
    for (address, reason) in reasons {
        // A reason is one line; an address never holds a TAB or newline
        // that matters here, but a hostile one must not add lines.
        let clean = |s: &str| s.replace(['\n', '\r', '\t'], " ");
        text.push_str(&clean(address));
        text.push('\t');
        text.push_str(&clean(reason));
        text.push('\n');
    }
    // qmgr may write this as root into mail_owner's directory: a fresh
    // file, never through a link someone left under the name.
    let _ = fs::remove_file(&tmp);
    let mut f = fs::File::options()
        .write(true)
        .create_new(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    fs::rename(&tmp, &final_path)
}

const WARNED: &str = "#warned";

/// Whether the sender of `id` was sent its delay notice.
pub fn warned(queue_directory: &Path, id: &str) -> bool {
    fs::read_to_string(path(queue_directory, id)).is_ok_and(|t| t.starts_with(WARNED))
}

/// The reasons recorded for `id`, by address (none when there is no log).
pub fn read(queue_directory: &Path, id: &str) -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string(path(queue_directory, id)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect()
}

/// Removes the defer log of `id`, if any.
pub fn remove(queue_directory: &Path, id: &str) {
    let _ = fs::remove_file(path(queue_directory, id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_stay_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(DEFER_DIR)).unwrap();
        let reasons = vec![
            ("a@x".to_string(), "connect to x: refused".to_string()),
            ("b\t@y".to_string(), "two\nlines".to_string()),
        ];
        write(dir.path(), "ABC", &reasons, false).unwrap();
        assert!(!warned(dir.path(), "ABC"));
        write(dir.path(), "ABC", &reasons, true).unwrap();
        write(dir.path(), "ABC", &reasons, false).unwrap();
        assert!(warned(dir.path(), "ABC"), "the mark is kept");
        let back = read(dir.path(), "ABC");
        assert_eq!(back[0], reasons[0]);
        assert_eq!(back[1], ("b @y".to_string(), "two lines".to_string()));
        remove(dir.path(), "ABC");
        assert!(read(dir.path(), "ABC").is_empty());
    }
}
