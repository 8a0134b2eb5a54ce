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

# main.cf is written here because the table paths must be absolute (TMP is
# the runner's temporary directory).
sed "s|@DIR@|$PWD|g" main.cf.in >main.cf
touch -d '1 hour ago' main.cf

# For mysql:, pgsql:, ldap:, sqlite:, memcache: tables named by an absolute
# path, postconf opens the file and reports unknown names in it; for
# mysql:name it knows name_* parameters in main.cf instead. Hash-table order:
# sorted here.
run_sorted postconf -c . -n
run_sorted postconf -c . relname_hosts
run_sorted postconf -c . -M smtp/inet
run_sorted postconf -c . -d mail_name
