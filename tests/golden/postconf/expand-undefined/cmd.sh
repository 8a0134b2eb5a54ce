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

# Undefined names are warned about whenever main.cf is read (once per
# reference), and expand to nothing.
run_sorted postconf -c . -n
run_sorted postconf -c . mail_name
run_sorted postconf -c . -x mail_name
run_sorted postconf -c . -h -x relay_domains
run_sorted postconf -c . -x myorigin
run_sorted postconf -c . -M smtp/inet
run_sorted postconf -c . -d mail_name
