//! One parameter's declaration: its name, value type and default.
//!
//! The table itself lives in `param_table.rs`; this module holds the types and
//! the lookup, so that code never compares parameter names against literals
//! scattered through the tree.

use crate::param_table::PARAMS;

/// The value type of a parameter, as Postfix's `mail_conf_*` readers know it.
///
/// The type decides how a value is validated when a typed view reads it; it
/// never changes what `postconf` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `yes` or `no`.
    Bool,
    /// A decimal integer (counts, sizes, codes).
    Int,
    /// A time: a number with an optional unit s, m, h, d or w; the byte is
    /// the unit assumed when the value has none.
    Time(u8),
    /// Anything else: strings, lists, lookup-table lists, restriction lists.
    Str,
}

/// Where a parameter's default comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A fixed text, possibly with `$name` references, printed as is.
    Static(&'static str),
    /// Derived from the running system (host name, interfaces, process).
    Dynamic,
}

/// One entry of the parameter table.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: DefaultValue,
}

pub(crate) const fn p(name: &'static str, ty: ParamType, default: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        default: DefaultValue::Static(default),
    }
}

pub(crate) const fn dynamic(name: &'static str, ty: ParamType) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        default: DefaultValue::Dynamic,
    }
}

/// The declaration of a built-in parameter, if `name` is one.
pub fn spec(name: &str) -> Option<&'static ParamSpec> {
    PARAMS
        .binary_search_by(|s| s.name.as_bytes().cmp(name.as_bytes()))
        .ok()
        .map(|i| &PARAMS[i])
}

/// Names that built-in defaults refer to but that have no entry of their
/// own (`$virtual_maps`, `${stress?...}`): Postfix knows them, with an
/// empty default, and does not list them.
pub fn is_hidden(name: &str) -> bool {
    static HIDDEN: std::sync::OnceLock<std::collections::BTreeSet<String>> =
        std::sync::OnceLock::new();
    HIDDEN
        .get_or_init(|| {
            let mut refs = std::collections::BTreeSet::new();
            for p in PARAMS {
                if let DefaultValue::Static(text) = p.default {
                    crate::collect_refs(text, &mut refs);
                }
            }
            refs.retain(|n| spec(n).is_none());
            refs
        })
        .contains(name)
}

/// Parameters whose values are not `$name`-expanded when read: they hold
/// text with macros of their own (`$SENDER`, `$rbl_code`, `$user`...) that
/// the component using them fills in.
pub const RAW: &[&str] = &[
    "command_execution_directory",
    "default_rbl_reply",
    "forward_path",
    "luser_relay",
    "mailbox_command",
    "postscreen_expansion_filter",
    "postscreen_reject_footer",
    "smtpd_expansion_filter",
    "smtpd_reject_footer",
];

pub fn is_raw(name: &str) -> bool {
    RAW.contains(&name)
}

/// Every built-in parameter, sorted by name.
pub fn all() -> &'static [ParamSpec] {
    PARAMS
}

/// The commands whose services qmgr schedules deliveries to; each such
/// service in master.cf gets its own `<service>_destination_concurrency_limit`
/// and friends (postconf(5), "transport-specific parameters").
pub const DELIVERY_AGENTS: &[&str] = &["smtp", "lmtp", "local", "virtual", "pipe", "error"];

/// The per-transport parameters every delivery-agent service gets, with the
/// global parameter each one defaults to.
pub const PER_TRANSPORT_PARAMS: &[(&str, &str)] = &[
    ("delivery_slot_cost", "$default_delivery_slot_cost"),
    ("delivery_slot_discount", "$default_delivery_slot_discount"),
    ("delivery_slot_loan", "$default_delivery_slot_loan"),
    (
        "destination_concurrency_failed_cohort_limit",
        "$default_destination_concurrency_failed_cohort_limit",
    ),
    (
        "destination_concurrency_limit",
        "$default_destination_concurrency_limit",
    ),
    (
        "destination_concurrency_negative_feedback",
        "$default_destination_concurrency_negative_feedback",
    ),
    (
        "destination_concurrency_positive_feedback",
        "$default_destination_concurrency_positive_feedback",
    ),
    ("destination_rate_delay", "$default_destination_rate_delay"),
    (
        "destination_recipient_limit",
        "$default_destination_recipient_limit",
    ),
    ("extra_recipient_limit", "$default_extra_recipient_limit"),
    (
        "initial_destination_concurrency",
        "$initial_destination_concurrency",
    ),
    ("minimum_delivery_slots", "$default_minimum_delivery_slots"),
    ("recipient_limit", "$default_recipient_limit"),
    ("recipient_refill_delay", "$default_recipient_refill_delay"),
    ("recipient_refill_limit", "$default_recipient_refill_limit"),
    ("transport_rate_delay", "$default_transport_rate_delay"),
];

/// Commands that run external programs and so get `<service>_time_limit`.
pub const COMMAND_RUNNERS: &[&str] = &["pipe", "spawn"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in PARAMS.windows(2) {
            assert!(
                w[0].name.as_bytes() < w[1].name.as_bytes(),
                "{} before {}",
                w[0].name,
                w[1].name
            );
        }
    }

    #[test]
    fn lookup_finds_first_last_and_middle() {
        assert_eq!(
            spec("2bounce_notice_recipient").unwrap().name,
            "2bounce_notice_recipient"
        );
        assert_eq!(
            spec("myorigin").unwrap().default,
            DefaultValue::Static("$myhostname")
        );
        assert_eq!(spec("smtpd_timeout").unwrap().ty, ParamType::Time(b's'));
        assert!(spec("no_such_parameter").is_none());
    }
}
