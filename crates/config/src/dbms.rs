//! The settings of database table configuration files (mysql_table(5),
//! pgsql_table(5), ldap_table(5), sqlite_table(5), memcache_table(5)), so
//! that postconf can warn about misspelled ones as Postfix does. The
//! clients themselves come with a later issue.

const COMMON: &[&str] = &["domain", "expansion_limit", "result_format", "query"];

const MYSQL: &[&str] = &[
    "hosts",
    "user",
    "password",
    "dbname",
    "table",
    "select_field",
    "where_field",
    "additional_conditions",
    "option_file",
    "option_group",
    "require_result_set",
    "tls_cert_file",
    "tls_key_file",
    "tls_CAfile",
    "tls_CApath",
    "tls_ciphers",
    "tls_verify_cert",
    "idle_interval",
    "retry_interval",
];

const PGSQL: &[&str] = &[
    "hosts",
    "user",
    "password",
    "dbname",
    "table",
    "select_field",
    "where_field",
    "additional_conditions",
    "select_function",
    "idle_interval",
    "retry_interval",
    "encoding",
];

const SQLITE: &[&str] = &[
    "dbpath",
    "table",
    "select_field",
    "where_field",
    "additional_conditions",
];

const LDAP: &[&str] = &[
    "server_host",
    "server_port",
    "timeout",
    "search_base",
    "query_filter",
    "result_attribute",
    "special_result_attribute",
    "terminal_result_attribute",
    "leaf_result_attribute",
    "scope",
    "bind",
    "bind_dn",
    "bind_pw",
    "cache",
    "cache_expiry",
    "cache_size",
    "recursion_limit",
    "size_limit",
    "dereference",
    "chase_referrals",
    "version",
    "debuglevel",
    "sasl",
    "sasl_mechs",
    "sasl_realm",
    "sasl_authz_id",
    "sasl_minssf",
    "start_tls",
    "tls_ca_cert_dir",
    "tls_ca_cert_file",
    "tls_cert",
    "tls_key",
    "tls_require_cert",
    "tls_random_file",
    "tls_cipher_suite",
    "result_filter",
];

const MEMCACHE: &[&str] = &[
    "memcache",
    "backup",
    "flags",
    "ttl",
    "key_format",
    "data_size_limit",
    "line_size_limit",
    "max_try",
    "retry_pause",
    "timeout",
];

/// The settings a table type's configuration file may hold, or `None` for a
/// type without one.
pub fn fields(kind: &str) -> Option<Vec<&'static str>> {
    let own = match kind {
        "mysql" => MYSQL,
        "pgsql" => PGSQL,
        "sqlite" => SQLITE,
        "ldap" => LDAP,
        "memcache" => MEMCACHE,
        _ => return None,
    };
    Some(COMMON.iter().chain(own).copied().collect())
}

/// Warnings for one `kind:path` configuration file, worded as postconf
/// words them: the file cannot be opened, or it sets something unknown.
pub fn check_file(kind: &str, path: &str) -> Vec<String> {
    let Some(known) = fields(kind) else {
        return Vec::new();
    };
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![format!(
                "open \"{kind}\" configuration \"{path}\": {}",
                crate::io_text(&e)
            )];
        }
    };
    let text = String::from_utf8_lossy(&text);
    let lines = crate::lines::physical_lines(&text);
    let mut out = Vec::new();
    for l in crate::lines::logical_lines(&lines) {
        if let Ok((name, value)) = crate::main_cf::split_nameval(&l.text)
            && !known.contains(&name)
        {
            out.push(format!("{kind}:{path}: unused parameter: {name}={value}"));
        }
    }
    out
}
