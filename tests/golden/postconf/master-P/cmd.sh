# -P: service/type/parameter = value for each -o, names sorted per entry,
# entries in master.cf order.
run postconf -c . -P
run postconf -c . -P relay/unix/syslog_name
run postconf -c . -P '*/*/syslog_name'
run postconf -c . -P relay
run postconf -c . -Px relay
run postconf -c . -Ph relay/unix/smtp_helo_timeout
run postconf -c . -P relay/unix/nonexist
run postconf -c . -P smtp
run postconf -c . -P dup
run postconf -c . -M dup
