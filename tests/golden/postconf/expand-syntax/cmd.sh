# Macro syntax errors in a value: warning(s), then fatal, for every command
# that reads main.cf.
run postconf -c . -n
run postconf -c . mail_name
cp -p truncated.cf main.cf
run postconf -c . -n
cp -p truncated-paren.cf main.cf
run postconf -c . -n
cp -p empty-name.cf main.cf
run postconf -c . -n
cp -p bad-operator.cf main.cf
run postconf -c . -n
cp -p bad-operator2.cf main.cf
run postconf -c . -n
run postconf -c . -d smtpd_banner
