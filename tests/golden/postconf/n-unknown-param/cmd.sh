# postconf -n on a main.cf with one unknown parameter: it is listed, and
# warned about on stderr (after the output).
run postconf -c . -n
run postconf -c . -n -h
run postconf -c . foo
