//! How fast can queue files become durable on this machine? Writes N
//! 5 KB queue files and makes them durable three ways: one at a time
//! (fdatasync + directory fsync each), in groups with `sync_batch`
//! (parallel fdatasync, one directory fsync), and in groups with one
//! syncfs(2). Run: cargo run --release -p rostfix-queue --example sync_bench [N] [GROUP] [DIR]

use std::time::Instant;

use rostfix_queue::QueueFile;
use rostfix_queue::file::sync_batch;

fn write(dir: &std::path::Path) -> rostfix_queue::file::Completed {
    let mut q = QueueFile::create(dir, false).unwrap();
    q.sender("sender@example.test");
    q.recipient("alice@example.test", "alice@example.test");
    q.content();
    let line = [b'x'; 78];
    for _ in 0..64 {
        q.line(&line).unwrap();
    }
    q.complete().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let group: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(32);
    let base = args
        .get(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let d = dir.path();

    let t = Instant::now();
    for _ in 0..n {
        let c = write(d);
        sync_batch(&[&c], d).unwrap();
    }
    let one = n as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    for _ in 0..n / group {
        let batch: Vec<_> = (0..group).map(|_| write(d)).collect();
        let refs: Vec<&_> = batch.iter().collect();
        sync_batch(&refs, d).unwrap();
    }
    let grouped = (n / group * group) as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    for _ in 0..n / group {
        let batch: Vec<_> = (0..group).map(|_| write(d)).collect();
        nix::unistd::syncfs(&batch[0].file).unwrap();
    }
    let syncfs = (n / group * group) as f64 / t.elapsed().as_secs_f64();

    println!(
        "durable queue files/s: one at a time {one:.0}, groups of {group} (sync_batch) {grouped:.0}, groups of {group} (syncfs) {syncfs:.0}"
    );
}
