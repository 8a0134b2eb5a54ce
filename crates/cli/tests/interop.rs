//! Tables are interchangeable with Debian's Postfix in both directions: an
//! `.lmdb`/`.cdb` file built by Postfix's postmap answers Rostfix's
//! `postmap -q`, and one built by Rostfix answers Postfix's. These tests
//! need Debian's postfix, postfix-lmdb and postfix-cdb (scripts/deps
//! installs them); without them they skip, unless ROSTFIX_REQUIRE_POSTFIX is
//! set (as scripts/test sets it), in which case a missing Postfix fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROSTFIX_POSTMAP: &str = env!("CARGO_BIN_EXE_postmap");
const ROSTFIX_POSTALIAS: &str = env!("CARGO_BIN_EXE_postalias");
const POSTFIX_POSTMAP: &str = "/usr/sbin/postmap";
const POSTFIX_POSTALIAS: &str = "/usr/sbin/postalias";

fn postfix_available() -> bool {
    let have = Path::new(POSTFIX_POSTMAP).exists()
        && Path::new("/usr/lib/postfix/postfix-lmdb.so").exists();
    if !have && std::env::var_os("ROSTFIX_REQUIRE_POSTFIX").is_some() {
        panic!(
            "Debian's postfix (with postfix-lmdb, postfix-cdb) is required here: run scripts/deps"
        );
    }
    have
}

/// A configuration directory with an empty main.cf whose mtime is in the
/// past (Postfix pauses for a freshly written main.cf).
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("main.cf"))
        .unwrap()
        .set_modified(past)
        .unwrap();
    dir
}

fn run(cmd: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(cmd)
        .current_dir(dir)
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const TABLE: &str = "info@kernel-panic.it  kernel-panic.it/info/\nD.Mazzocchio@kernel-panic.it  kernel-panic.it/d.mazzocchio/\n";

fn write_table(dir: &Path) -> PathBuf {
    let path = dir.join("vmailbox");
    std::fs::write(&path, TABLE).unwrap();
    path
}

/// Builds `kind:vmailbox` with one postmap and looks `key` up with the
/// other: the files must be interchangeable.
fn build_then_query(builder: &str, reader: &str, dir: &Path, kind: &str, key: &str) {
    let table = format!("{kind}:vmailbox");
    let built = run(builder, dir, &[&table]);
    assert!(built.status.success(), "{kind}: {built:?}");
    let q = run(reader, dir, &["-q", key, &table]);
    assert!(q.status.success(), "{kind}: {q:?}");
    assert_eq!(stdout(&q), "kernel-panic.it/d.mazzocchio/\n", "{kind}");
}

#[test]
fn tables_built_by_postfix_answer_rostfix() {
    if !postfix_available() {
        return;
    }
    let cfg = config_dir();
    let dir = cfg.path();
    write_table(dir);
    for kind in ["lmdb", "cdb"] {
        build_then_query(
            POSTFIX_POSTMAP,
            ROSTFIX_POSTMAP,
            dir,
            kind,
            "d.mazzocchio@kernel-panic.it",
        );
        let miss = run(
            ROSTFIX_POSTMAP,
            dir,
            &["-q", "nobody@kernel-panic.it", &format!("{kind}:vmailbox")],
        );
        assert_eq!(miss.status.code(), Some(1), "{kind}: a miss exits 1");
    }
    let dump = run(ROSTFIX_POSTMAP, dir, &["-s", "lmdb:vmailbox"]);
    assert_eq!(
        stdout(&dump),
        "d.mazzocchio@kernel-panic.it\tkernel-panic.it/d.mazzocchio/\ninfo@kernel-panic.it\tkernel-panic.it/info/\n"
    );
}

#[test]
fn tables_built_by_rostfix_answer_postfix() {
    if !postfix_available() {
        return;
    }
    let cfg = config_dir();
    let dir = cfg.path();
    write_table(dir);
    for kind in ["lmdb", "cdb"] {
        build_then_query(
            ROSTFIX_POSTMAP,
            POSTFIX_POSTMAP,
            dir,
            kind,
            "D.MAZZOCCHIO@kernel-panic.it",
        );
    }
    let dump = run(POSTFIX_POSTMAP, dir, &["-s", "lmdb:vmailbox"]);
    assert_eq!(
        stdout(&dump),
        "d.mazzocchio@kernel-panic.it\tkernel-panic.it/d.mazzocchio/\ninfo@kernel-panic.it\tkernel-panic.it/info/\n"
    );
    // Edits in place by one are seen by the other.
    let del = run(
        POSTFIX_POSTMAP,
        dir,
        &["-d", "info@kernel-panic.it", "lmdb:vmailbox"],
    );
    assert!(del.status.success(), "{del:?}");
    let q = run(
        ROSTFIX_POSTMAP,
        dir,
        &["-q", "info@kernel-panic.it", "lmdb:vmailbox"],
    );
    assert_eq!(q.status.code(), Some(1));
}

#[test]
fn aliases_of_seed_000_built_by_rostfix_answer_postfix() {
    if !postfix_available() {
        return;
    }
    let cfg = config_dir();
    let dir = cfg.path();
    std::fs::write(
        dir.join("aliases"),
        "root: d.mazzocchio@kernel-panic.it\nMAILER-DAEMON: postmaster\npostmaster: root\nbin: root\n",
    )
    .unwrap();
    let built = run(ROSTFIX_POSTALIAS, dir, &["lmdb:aliases"]);
    assert!(built.status.success(), "{built:?}");
    for (key, want) in [
        ("root", "d.mazzocchio@kernel-panic.it"),
        ("mailer-daemon", "postmaster"),
        ("bin", "root"),
    ] {
        let q = run(POSTFIX_POSTALIAS, dir, &["-q", key, "lmdb:aliases"]);
        assert_eq!(stdout(&q), format!("{want}\n"), "{key}: {q:?}");
    }
}
