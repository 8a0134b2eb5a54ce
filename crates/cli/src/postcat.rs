//! postcat(1): show queue files, by path or (`-q`) by queue ID, in
//! Postfix's layout (the rendering is [`rostfix_queue::postcat`]). It
//! reads a file while the mail system runs; a file being delivered is
//! read as it is.

use std::path::{Path, PathBuf};

use rostfix_config::Config;
use rostfix_queue::postcat::{Show, render};
use rostfix_queue::{QueueId, QueueReader};

use crate::msg::{Getopt, fatal};

const USAGE: &str = "[-bdehoqv] [-c config_dir] [file(s)...]";

/// Where `-q` looks, in Postfix's order.
const QUEUES: &[&str] = &["incoming", "active", "deferred", "hold", "maildrop"];

pub fn main() -> i32 {
    crate::msg::init("postcat");
    let g = Getopt::parse(std::env::args_os().skip(1), "bc:dehoqrsv", USAGE);
    let mut dir: Option<PathBuf> = None;
    let mut show = Show::default();
    let mut by_id = false;
    for (c, v) in &g.options {
        match c {
            'c' => dir = Some(PathBuf::from(crate::msg::option_text(v))),
            'b' => show.body = true,
            'e' => show.envelope = true,
            'h' => show.header = true,
            'q' => by_id = true,
            'v' => show.verbose = true,
            // -d, -o, -r, -s: record types, offsets and order of
            // Postfix's own format; accepted, nothing to add here.
            _ => {}
        }
    }
    let operands: Vec<String> = g
        .operands
        .iter()
        .map(|o| o.to_string_lossy().into_owned())
        .collect();
    if !by_id {
        for path in &operands {
            show_file(Path::new(path), path, show);
        }
        return 0;
    }
    let cf = Config::load(dir.as_deref()).unwrap_or_else(|e| fatal(e));
    let queue_directory = PathBuf::from(cf.string("queue_directory").unwrap_or_else(|e| fatal(e)));
    for id in &operands {
        if QueueId::parse(id).is_none() {
            fatal(format!("bad mail queue ID: {id}"));
        }
        let found = QUEUES.iter().find_map(|q| {
            let p = queue_directory.join(q).join(id);
            p.exists().then(|| (p, format!("{q}/{id}")))
        });
        let Some((path, label)) = found else {
            fatal(format!("open queue file {id}: No such file or directory"));
        };
        show_file(&path, &label, show);
    }
    0
}

fn show_file(path: &Path, label: &str, show: Show) {
    let maildrop = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "maildrop");
    match QueueReader::read(path) {
        Ok(q) => print!("{}", render(&q, label, show, maildrop)),
        Err(rostfix_queue::file::QueueError::Io(e)) => fatal(format!(
            "open {}: {}",
            path.display(),
            crate::msg::io_text(&e)
        )),
        Err(_) => crate::msg::warning(&format!(
            "{}: input is not a valid queue file",
            path.display()
        )),
    }
}
