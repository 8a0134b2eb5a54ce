# A line that starts with whitespace at the top of main.cf (nothing to
# continue) is dropped with a warning; after-comments.cf has it after comment
# and blank lines.
run postconf -c . -n
run postconf -c . myorigin
cp -p after-comments.cf main.cf
run postconf -c . -n
run postconf -c . relayhost
