# Querying a name that is not a parameter: a warning on stderr, nothing on
# stdout, exit status 0; known names in the same command are still printed.
run postconf -c . foo
run postconf -c . foo mail_name
run postconf -c . mail_name foo myorigin
run postconf -c . -d foo
run postconf -c . -h foo
run postconf -c . -x foo
run postconf -c . -n foo
run postconf -c . -n myorigin mail_name
run postconf -c . MAIL_NAME
