//! Where Rostfix deliberately differs from Debian's Postfix (DESIGN.md
//! sections 1 and 6), so the golden transcripts cannot pin it: `dbm:`
//! tables work (stored as lmdb under the `.db` name), `postconf -m` lists
//! what Rostfix implements, and the defaults that changed.

use std::path::Path;
use std::process::{Command, Output};

fn run(cmd: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(cmd)
        .current_dir(dir)
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    std::fs::write(dir.path().join("master.cf"), "").unwrap();
    dir
}

#[test]
fn dbm_tables_work_as_in_seed_003() {
    let cfg = setup();
    let dir = cfg.path();
    // Seed 003 routes all mail through its ISP with dbm: tables.
    std::fs::write(
        dir.join("transport"),
        "example.com  :\n*  smtp:[smtp.sbc.example]\n",
    )
    .unwrap();
    let built = run(env!("CARGO_BIN_EXE_postmap"), dir, &["dbm:transport"]);
    assert!(built.status.success(), "{built:?}");
    assert!(dir.join("transport.db").exists());
    let q = run(
        env!("CARGO_BIN_EXE_postmap"),
        dir,
        &["-q", "*", "dbm:transport"],
    );
    assert_eq!(
        String::from_utf8_lossy(&q.stdout),
        "smtp:[smtp.sbc.example]\n"
    );
}

#[test]
fn postconf_lists_the_table_types_rostfix_implements() {
    let cfg = setup();
    let out = run(env!("CARGO_BIN_EXE_postconf"), cfg.path(), &["-m"]);
    let types: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        types,
        [
            "btree", "cdb", "cidr", "dbm", "fail", "hash", "inline", "lmdb", "nis", "pcre",
            "pipemap", "proxy", "regexp", "static", "texthash", "unionmap", "unix"
        ]
    );
}

#[test]
fn changed_defaults() {
    let cfg = setup();
    let out = run(
        env!("CARGO_BIN_EXE_postconf"),
        cfg.path(),
        &[
            "-d",
            "mail_name",
            "smtpd_forbid_bare_newline",
            "smtpd_banner",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mail_name = Rostfix\nsmtpd_forbid_bare_newline = normalize\nsmtpd_banner = $myhostname ESMTP $mail_name\n"
    );
}

#[test]
fn a_missing_table_is_a_temporary_failure_not_a_miss() {
    let cfg = setup();
    let dir = cfg.path();
    // postmap -q reports it as fatal (exit 1, message), never as "not found"
    // silently; the library answers Retry (crates/maps unit tests).
    let q = run(
        env!("CARGO_BIN_EXE_postmap"),
        dir,
        &["-q", "x", "lmdb:nosuch"],
    );
    assert_eq!(q.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&q.stderr),
        "postmap: fatal: open database nosuch.lmdb: No such file or directory\n"
    );
    // A directory where the table should be: unreadable, also a failure.
    std::fs::create_dir(dir.join("dir.lmdb")).unwrap();
    let q = run(env!("CARGO_BIN_EXE_postmap"), dir, &["-q", "x", "lmdb:dir"]);
    assert_eq!(q.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&q.stderr).starts_with("postmap: fatal: open database dir.lmdb")
    );
}
