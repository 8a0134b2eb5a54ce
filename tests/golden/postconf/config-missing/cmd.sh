# A configuration directory that does not exist (or is not a directory).
run postconf -c nonexistent
run postconf -c nonexistent -n
run postconf -c nonexistent mail_name
run postconf -c nonexistent -d mail_name
run postconf -c nonexistent -M
run postconf -c nonexistent -e relayhost=x
run postconf -c nonexistent -a
run postconf -c nonexistent -l
run postconf -c nonexistent -m
run postconf -c /nonexistent/dir -n
run postconf -c main.cf -n
mkdir empty
run postconf -c empty -n
touch -d '1 hour ago' empty/main.cf
run postconf -c empty -n
run postconf -c empty -h config_directory
