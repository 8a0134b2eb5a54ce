//! postqueue(1): list the queue (`-p`, `-j`) and ask qmgr to deliver
//! deferred mail now (`-f`, `-i ID`; `-s site` needs the flush service
//! of a later issue and says so as Postfix does for a site it does not
//! serve). The listing itself is showq's ([`rostfix_engine::showq`]).

use std::path::{Path, PathBuf};

use rostfix_config::Config;
use rostfix_queue::maildrop::{QMGR_FIFO, trigger};

use crate::msg::{Getopt, fatal};
use crate::sendmail::fatal_status;

const USAGE: &str = "-f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site";

/// EX_UNAVAILABLE: what Postfix exits with when the service is missing.
const EX_UNAVAILABLE: i32 = 69;

pub fn main() -> i32 {
    crate::msg::init("postqueue");
    crate::msg::set_usage_status(EX_UNAVAILABLE);
    let g = Getopt::parse(std::env::args_os().skip(1), "c:fi:jps:v", USAGE);
    let mut dir: Option<PathBuf> = None;
    let mut action = None;
    for (c, v) in &g.options {
        let text = crate::msg::option_text(v);
        match c {
            'c' => dir = Some(PathBuf::from(text)),
            'v' => {}
            _ => {
                if action.is_some() {
                    crate::msg::usage_exit(USAGE);
                }
                action = Some((*c, text));
            }
        }
    }
    // Installed set-group-ID (postdrop) to reach public/.
    let dir = crate::postdrop::trusted_config_dir(dir);
    match action {
        Some(('p', _)) => list(dir.as_deref(), false),
        Some(('j', _)) => list(dir.as_deref(), true),
        Some(('f', _)) => flush(dir.as_deref()),
        Some(('i', id)) => flush_one(dir.as_deref(), &id),
        Some(('s', site)) => flush_site(dir.as_deref(), &site),
        _ => crate::msg::usage_exit(USAGE),
    }
}

fn queue_directory(dir: Option<&Path>) -> PathBuf {
    let cf = Config::load(dir).unwrap_or_else(|e| fatal(e));
    PathBuf::from(cf.string("queue_directory").unwrap_or_else(|e| fatal(e)))
}

/// `postqueue -p` (`json`: `-j`), also `mailq` and `sendmail -bp`.
pub fn list(dir: Option<&Path>, json: bool) -> i32 {
    let queue_directory = queue_directory(dir);
    // Through the mail system's showq, which may read the queue files;
    // directly (root, mail_owner) when it is not running.
    if let Some(text) = rostfix_engine::showq::ask(&queue_directory, json) {
        print!("{text}");
        return 0;
    }
    crate::msg::warning("Mail system is down -- accessing queue directly");
    let entries = rostfix_engine::showq::entries(&queue_directory);
    let out = if json {
        rostfix_engine::showq::json(&entries)
    } else {
        rostfix_engine::showq::text(&entries)
    };
    print!("{out}");
    0
}

/// `postqueue -f`, also `sendmail -q`: qmgr delivers deferred mail now.
pub fn flush(dir: Option<&Path>) -> i32 {
    request(dir, "F\n")
}

fn flush_one(dir: Option<&Path>, id: &str) -> i32 {
    if rostfix_queue::QueueId::parse(id).is_none() {
        fatal(format!("invalid mail queue id: {id}"));
    }
    request(dir, &format!("I {id}\n"))
}

/// postqueue -s: the deferred mail for a fast_flush_domains site, now.
fn flush_site(dir: Option<&Path>, site: &str) -> i32 {
    let cf = Config::load(dir).unwrap_or_else(|e| fatal(e));
    let domains: Vec<String> = rostfix_config::value::split_list(
        &cf.string("fast_flush_domains").unwrap_or_else(|e| fatal(e)),
    )
    .into_iter()
    .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
    .collect();
    if !rostfix_engine::settings::flushable(&domains, site) || site.contains(char::is_whitespace) {
        fatal_status(
            EX_UNAVAILABLE,
            &format!("Flush service is not configured for destination \"{site}\""),
        );
    }
    request(dir, &format!("S {site}\n"))
}

fn request(dir: Option<&Path>, text: &str) -> i32 {
    let queue_directory = queue_directory(dir);
    if trigger(&queue_directory.join(QMGR_FIFO), text.as_bytes()).is_err() {
        fatal_status(
            EX_UNAVAILABLE,
            "Cannot flush mail queue - mail system is down",
        );
    }
    0
}
