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

# Unknown -o parameter names in master.cf are reported as
# "./master.cf: unused parameter: name=value"; a main.cf name referenced only
# from a master.cf -o value counts as used.
run_sorted postconf -c . -n
run_sorted postconf -c . mua_client_restrictions
run_sorted postconf -c . -M
run_sorted postconf -c . -P
run_sorted postconf -c . -P -x
run_sorted postconf -c . -F smtp/inet/command
