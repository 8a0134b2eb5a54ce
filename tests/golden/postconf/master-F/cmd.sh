# -F: service/type/field = value, for the 8 fields of each entry.
run postconf -c . -F smtp/inet
run postconf -c . -F smtp/inet/command
run postconf -c . -F submission/inet/command
run postconf -c . -Ff submission/inet/command
run postconf -c . -F '*/*/chroot'
run postconf -c . -F 'smtp/*/process_limit' wakeup/unix/wakeup
run postconf -c . -Fh smtp/inet/type braces/unix/command
run postconf -c . -F braces
run postconf -c . -F nonexist/inet/type
run postconf -c . -F smtp/inet/bogus
run postconf -c . -F smtp//type
