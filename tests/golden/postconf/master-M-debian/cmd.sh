# Debian's default master.cf through -M, -Mf and name selection.
run postconf -c . -M
run postconf -c . -Mf
run postconf -c . -M smtp/inet
run postconf -c . -M smtp
run postconf -c . -M relay/unix smtp/inet
run postconf -c . -Mf relay scalemail-backend mailman
