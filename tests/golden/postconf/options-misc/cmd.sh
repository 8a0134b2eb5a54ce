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

# -H (names only), -o (override), conflicting options, usage errors, -C.
# (main.cf has one unknown name, foo, so most commands warn about it.)
run postconf -c . -H myorigin relayhost
run postconf -c . -nH
run postconf -c . -o relayhost=x relayhost mail_name
run postconf -c . -o relayhost=x -n
run postconf -c . -o relayhost=x -d relayhost
run_sorted postconf -c . -o bar=1 -n
run postconf -c . -o mail_name -n
run postconf -c . -C user
run postconf -c . -C user -n
run postconf -c . -C service -n
run postconf -c . -C bogus
run postconf -c . -d -n
run postconf -c . -M -P
run postconf -c . -M -n
run postconf -c . -e relayhost=x -X
run postconf -c . -Z
run postconf -c
