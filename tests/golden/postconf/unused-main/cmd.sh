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

# Names that are neither built-in, nor service-derived, nor referenced as
# $name anywhere are reported as "unused parameter" (in hash-table order,
# sorted here). Referenced user-defined names are fine.
run_sorted postconf -c . -n
run_sorted postconf -c . foo_bar
run_sorted postconf -c . mua_client_restrictions
run_sorted postconf -c . -x smtpd_client_restrictions
run_sorted postconf -c . unreferenced_helper
run_sorted postconf -c . virtual_maps
run_sorted postconf -c . -d foo_bar
run_sorted postconf -c . -M smtp/inet
run_sorted postconf -c . -o foo_bar=2 -n
run_sorted postconf -c . -o other_unknown=2 -h myorigin
