# Seed 001_1523cea8538300f4.txt (ijuned.blogspot.com, MySQL + SASL, HTML page): main.cf as a reader of the guide ends up with it
# (tests/seeds/001/main.cf), master.cf = Debian's default.

# Postfix reports some warnings in hash-table order, which changes from run
# to run; run_sorted is `run` with the standard error lines sorted (LC_ALL=C).
run_sorted() {
    printf '$ %s\n' "$*"
    "$@" >"$RUN_TMP/out" 2>"$RUN_TMP/err" </dev/null
    rc=$?
    cat "$RUN_TMP/out"
    sort "$RUN_TMP/err" | sed 's/^/! /'
    printf '? %s\n' "$rc"
}

run_sorted postconf -c . -n

# every parameter set in main.cf, in file order
run_sorted postconf -c . home_mailbox
run_sorted postconf -c . recipient_delimiter
run_sorted postconf -c . mydestination
run_sorted postconf -c . alias_maps
run_sorted postconf -c . relocated_maps
run_sorted postconf -c . transport_maps
run_sorted postconf -c . virtual_maps
run_sorted postconf -c . local_recipient_maps
run_sorted postconf -c . virtual_mailbox_base
run_sorted postconf -c . virtual_mailbox_maps
run_sorted postconf -c . virtual_uid_maps
run_sorted postconf -c . virtual_gid_maps
run_sorted postconf -c . queue_directory
run_sorted postconf -c . command_directory
run_sorted postconf -c . daemon_directory
run_sorted postconf -c . mail_owner
run_sorted postconf -c . myhostname
run_sorted postconf -c . mydomain
run_sorted postconf -c . myorigin
run_sorted postconf -c . unknown_local_recipient_reject_code
run_sorted postconf -c . debug_peer_level
run_sorted postconf -c . debugger_command
run_sorted postconf -c . sendmail_path
run_sorted postconf -c . newaliases_path
run_sorted postconf -c . mailq_path
run_sorted postconf -c . setgid_group
run_sorted postconf -c . html_directory
run_sorted postconf -c . manpage_directory
run_sorted postconf -c . sample_directory
run_sorted postconf -c . readme_directory
run_sorted postconf -c . broken_sasl_auth_clients
run_sorted postconf -c . smtpd_sasl_auth_enable
run_sorted postconf -c . smtpd_sasl_security_options
run_sorted postconf -c . smtpd_recipient_restrictions
run_sorted postconf -c . smtpd_sasl_local_domain

# values only
run_sorted postconf -c . -h debugger_command
run_sorted postconf -c . -h smtpd_recipient_restrictions
run_sorted postconf -c . -h mydestination

# expanded values
run_sorted postconf -c . -x mydestination
run_sorted postconf -c . -x local_recipient_maps
run_sorted postconf -c . -x myorigin
run_sorted postconf -c . -x smtpd_sasl_local_domain
run_sorted postconf -c . -h -x mydestination

# master.cf
run_sorted postconf -c . -M
run_sorted postconf -c . -F
run_sorted postconf -c . -P
